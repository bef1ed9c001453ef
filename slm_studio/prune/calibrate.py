"""Activation statistics for pruning, gathered with forward hooks over a few training batches.

One pass records, for every prunable Linear of the decoder layers, the sum over real (non-padding) tokens of each
input column's squared activation, and for every decoder layer how much it changes the hidden state (one minus
the cosine between its input and output: a layer that barely turns the residual stream matters little).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from slm_studio.data.corpus import TokenizedData, batch_indices

# the Linear layers inside each decoder layer that pruning may touch (embeddings, norms and the head never)
PRUNABLE = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def prunable_linears(model) -> dict[str, torch.nn.Linear]:
    """Parameter name ('model.layers.3.mlp.up_proj.weight') -> its Linear module."""
    return {f"model.layers.{i}.{path}.weight": layer.get_submodule(path)
            for i, layer in enumerate(model.model.layers) for path in PRUNABLE}


def calibration_batches(data: TokenizedData, count: int, batch_size: int, seed: int) -> list[tuple]:
    """The first `count` batches of the run's own training stream, as (input_ids, attention_mask)."""
    index = [batch_indices(len(data), i * batch_size, batch_size, seed) for i in range(count)]
    return [(data.input_ids[i], data.attention_mask[i]) for i in index]


@dataclass
class Activations:
    input_sq: dict[str, torch.Tensor] = field(default_factory=dict)  # weight name -> sum of x_j^2 per column
    layer_change: list[float] = field(default_factory=list)  # per decoder layer: mean (1 - cos(in, out))
    tokens: int = 0

    def input_norm(self, name: str) -> torch.Tensor:
        """The L2 norm of each input column over all calibration tokens."""
        return self.input_sq[name].sqrt()


def collect(model, batches: list[tuple]) -> Activations:
    device = next(model.parameters()).device
    stats = Activations(layer_change=[0.0] * len(model.model.layers))
    real: dict[str, torch.Tensor] = {}  # the current batch's token mask, read by the hooks
    hooks = [module.register_forward_hook(_column_hook(stats, name, real))
             for name, module in prunable_linears(model).items()]
    hooks += [layer.register_forward_hook(_layer_hook(stats, i, real), with_kwargs=True)
              for i, layer in enumerate(model.model.layers)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for ids, attention in batches:
                real["mask"] = attention.to(device).bool()
                stats.tokens += int(real["mask"].sum())
                model.model(input_ids=ids.to(device), attention_mask=attention.to(device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    stats.layer_change = [total / max(1, stats.tokens) for total in stats.layer_change]
    return stats


def _column_hook(stats: Activations, name: str, real: dict):
    def hook(module, args, output):
        x = args[0][real["mask"]].float()
        total = x.pow(2).sum(0)
        stats.input_sq[name] = stats.input_sq[name] + total if name in stats.input_sq else total
    return hook


def _layer_hook(stats: Activations, index: int, real: dict):
    def hook(module, args, kwargs, output):
        before = (args[0] if args else kwargs["hidden_states"])[real["mask"]].float()
        after = (output[0] if isinstance(output, tuple) else output)[real["mask"]].float()
        stats.layer_change[index] += float((1 - torch.nn.functional.cosine_similarity(before, after, dim=-1)).sum())
    return hook
