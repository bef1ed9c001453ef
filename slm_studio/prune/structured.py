"""Structured pruning: a smaller dense model without its least important KV groups, MLP channels and layers.

Grouped-query attention shares each key/value head among `group` query heads, so attention is cut a whole group at
a time (one KV head with its query heads). Hugging Face Llama configs hold one head count and one MLP width for
all layers, so every layer loses the same number of groups and channels (which ones differs per layer).

Importance, from the calibration statistics (`score="activation"`): the expected squared contribution of each
input column of o_proj (for heads) or down_proj (for MLP channels), ||W[:, j]||^2 * sum(x_j^2), summed over a
group's columns; `score="magnitude"` drops the activation factor. A layer's importance is how much it turns the
hidden state (mean 1 - cos(input, output)).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from slm_studio.errors import UserError
from slm_studio.prune.calibrate import Activations


@dataclass
class StructuredPlan:
    layers: list[int]  # indices of the kept layers (in the model being pruned)
    kv_heads: list[list[int]]  # per kept layer: the KV heads (groups) it keeps
    channels: list[list[int]]  # per kept layer: the MLP channels it keeps


def head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def plan_structure(model, stats: Activations, sparsity: float, drop_layers: int, score: str) -> StructuredPlan:
    config = model.config
    n_kv, width, n_layers = config.num_key_value_heads, config.intermediate_size, config.num_hidden_layers
    keep_kv, keep_channels = n_kv - round(sparsity * n_kv), width - round(sparsity * width)
    if keep_kv < 1:
        raise UserError(f"structured sparsity {sparsity} would remove all {n_kv} attention head groups of every "
                        f"layer; choose a lower sparsity")
    if keep_channels < 1:
        raise UserError(f"structured sparsity {sparsity} would remove every MLP channel; choose a lower sparsity")
    if not 0 <= drop_layers < n_layers:
        raise UserError(f"cannot remove {drop_layers} of the student's {n_layers} layers (at least one must stay)")
    ranked = sorted(range(n_layers), key=lambda i: stats.layer_change[i], reverse=True)
    layers = sorted(ranked[:n_layers - drop_layers])
    group = config.num_attention_heads // n_kv
    kv_heads, channels = [], []
    for i in layers:
        mlp, attn = model.model.layers[i].mlp, model.model.layers[i].self_attn
        column = _column_importance(mlp.down_proj.weight, stats.input_sq.get(f"model.layers.{i}.mlp.down_proj.weight"),
                                    score)
        channels.append(_top(column, keep_channels))
        column = _column_importance(attn.o_proj.weight,
                                    stats.input_sq.get(f"model.layers.{i}.self_attn.o_proj.weight"), score)
        kv_heads.append(_top(column.view(n_kv, group * head_dim(config)).sum(1), keep_kv))
    return StructuredPlan(layers, kv_heads, channels)


def _column_importance(weight: torch.Tensor, input_sq: torch.Tensor | None, score: str) -> torch.Tensor:
    energy = weight.detach().float().pow(2).sum(0)
    return energy * input_sq.to(energy.device) if score == "activation" else energy


def _top(importance: torch.Tensor, keep: int) -> list[int]:
    return sorted(importance.topk(keep).indices.tolist())


def apply_structure(model, plan: StructuredPlan):
    """A new, smaller model of the same class holding the kept slices of `model`'s weights."""
    config = copy.deepcopy(model.config)
    group, dim = config.num_attention_heads // config.num_key_value_heads, head_dim(config)
    config.head_dim = dim  # no longer hidden_size / heads once heads go
    config.num_hidden_layers = len(plan.layers)
    config.num_key_value_heads = len(plan.kv_heads[0])
    config.num_attention_heads = config.num_key_value_heads * group
    config.intermediate_size = len(plan.channels[0])
    if getattr(config, "layer_types", None):
        config.layer_types = [config.layer_types[i] for i in plan.layers]
    if getattr(config, "slm_studio_layer_map", None):  # student layer -> teacher layer, for layer-wise losses
        config.slm_studio_layer_map = [config.slm_studio_layer_map[i] for i in plan.layers]
    parameter = next(model.parameters())
    pruned = type(model)(config).to(device=parameter.device, dtype=parameter.dtype)
    pruned.generation_config = copy.deepcopy(model.generation_config)
    if pruned.config._attn_implementation != model.config._attn_implementation:
        pruned.set_attn_implementation(model.config._attn_implementation)  # e.g. eager, for attention transfer
    source = model.state_dict()
    pruned.load_state_dict({name: _slice(name, source, plan, group, dim) for name in pruned.state_dict()})
    return pruned


def _slice(name: str, source: dict, plan: StructuredPlan, group: int, dim: int) -> torch.Tensor:
    if not name.startswith("model.layers."):
        return source[name].clone()
    _, _, index, rest = name.split(".", 3)
    new = int(index)
    tensor = source[f"model.layers.{plan.layers[new]}.{rest}"]
    kv = plan.kv_heads[new]
    query_rows = _head_rows([g * group + j for g in kv for j in range(group)], dim)
    cuts = {  # parameter -> (dimension, kept indices)
        "self_attn.q_proj.weight": (0, query_rows), "self_attn.q_proj.bias": (0, query_rows),
        "self_attn.k_proj.weight": (0, _head_rows(kv, dim)), "self_attn.k_proj.bias": (0, _head_rows(kv, dim)),
        "self_attn.v_proj.weight": (0, _head_rows(kv, dim)), "self_attn.v_proj.bias": (0, _head_rows(kv, dim)),
        "self_attn.o_proj.weight": (1, query_rows),
        "mlp.gate_proj.weight": (0, plan.channels[new]), "mlp.gate_proj.bias": (0, plan.channels[new]),
        "mlp.up_proj.weight": (0, plan.channels[new]), "mlp.up_proj.bias": (0, plan.channels[new]),
        "mlp.down_proj.weight": (1, plan.channels[new]),
    }
    if rest not in cuts:
        return tensor.clone()
    dimension, keep = cuts[rest]
    return tensor.index_select(dimension, torch.tensor(keep, device=tensor.device)).clone()


def _head_rows(heads: list[int], dim: int) -> list[int]:
    return [h * dim + d for h in heads for d in range(dim)]


def describe_plan(model, plan: StructuredPlan) -> dict:
    """What was kept, for pruning.json."""
    config = model.config
    group = config.num_attention_heads // config.num_key_value_heads
    return {"layers_kept": plan.layers, "kv_groups_kept": plan.kv_heads,
            "query_heads_per_layer": len(plan.kv_heads[0]) * group,
            "kv_groups_per_layer": len(plan.kv_heads[0]), "mlp_channels_per_layer": len(plan.channels[0]),
            "before": {"layers": config.num_hidden_layers, "query_heads": config.num_attention_heads,
                       "kv_groups": config.num_key_value_heads, "mlp_channels": config.intermediate_size}}
