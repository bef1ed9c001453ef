"""Intermediate-layer transfer: attention maps and hidden states of each student layer are pulled towards those of
the teacher layer it came from.

- Attention transfer: per mapped layer pair, the head-averaged attention maps [batch, query, key] (each row a
  distribution over keys) are compared by KL(teacher row || student row), averaged over real query tokens. Averaging
  over heads lets students with fewer heads (structured pruning) be compared with their teacher.
- Hidden-state loss: 1 - cosine similarity between the output of student layer i and of its teacher layer,
  averaged over real tokens.

Both are zero when the student's internals equal the teacher's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from slm_studio.errors import UserError


@dataclass
class Internals:
    last_hidden: torch.Tensor  # [batch, seq, hidden] after the final norm
    hidden: dict[int, torch.Tensor]  # layer index -> that layer's output [batch, seq, hidden]
    attention: dict[int, torch.Tensor]  # layer index -> head-averaged attention map [batch, seq, seq]


def layer_pairs(student, teacher) -> list[tuple[int, int]]:
    """(student layer, teacher layer) pairs: a derived student's own layer map, else evenly spaced layers."""
    n_student, n_teacher = student.config.num_hidden_layers, teacher.config.num_hidden_layers
    mapping = getattr(student.config, "slm_studio_layer_map", None)
    if not mapping or len(mapping) != n_student:
        mapping = [round(i * (n_teacher - 1) / max(n_student - 1, 1)) for i in range(n_student)]
    return list(enumerate(mapping))


def check_transferable(student, teacher, hidden_weight: float) -> None:
    if hidden_weight > 0 and student.config.hidden_size != teacher.config.hidden_size:
        raise UserError(f"the hidden-state loss compares hidden states, but the student's width "
                        f"{student.config.hidden_size} differs from the teacher's {teacher.config.hidden_size}; "
                        f"set hidden_weight to 0")


def use_eager_attention(model) -> None:
    """Attention weights are only returned by the eager implementation (SDPA never materialises them)."""
    if model.config._attn_implementation != "eager":
        model.set_attn_implementation("eager")


def run_with_internals(model, input_ids, attention_mask, layers: list[int], hidden: bool,
                       attention: bool) -> Internals:
    """One forward pass of `model.model` that also returns the chosen layers' outputs and/or attention maps."""
    captured: dict[int, torch.Tensor] = {}

    def keep(index: int):
        return lambda _module, _args, output: captured.__setitem__(
            index, output[0] if isinstance(output, tuple) else output)

    hooks = [model.model.layers[i].register_forward_hook(keep(i)) for i in (layers if hidden else [])]
    try:
        out = model.model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=attention)
    finally:
        for hook in hooks:
            hook.remove()
    maps = {i: out.attentions[i].float().mean(dim=1) for i in layers} if attention else {}
    return Internals(out.last_hidden_state, captured, maps)


def attention_transfer_loss(teacher_maps: torch.Tensor, student_maps: torch.Tensor,
                            query_mask: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) over keys for each real query row of [batch, seq, seq] maps, averaged."""
    t, s = teacher_maps.float(), student_maps.float()
    per_row = (t * (t.clamp_min(1e-12).log() - s.clamp_min(1e-12).log())).sum(-1)
    mask = query_mask.to(per_row.dtype)
    return (per_row * mask).sum() / mask.sum().clamp_min(1)


def hidden_state_loss(teacher_hidden: torch.Tensor, student_hidden: torch.Tensor,
                      token_mask: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity of [batch, seq, hidden] states, averaged over real tokens."""
    cosine = F.cosine_similarity(student_hidden.float(), teacher_hidden.float(), dim=-1)
    mask = token_mask.to(cosine.dtype)
    return ((1 - cosine) * mask).sum() / mask.sum().clamp_min(1)


def transfer_losses(teacher: Internals, student: Internals, pairs: list[tuple[int, int]],
                    token_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """{'attn': ..., 'hidden': ...} averaged over the layer pairs, for the parts both Internals hold."""
    losses = {}
    if student.attention:
        losses["attn"] = torch.stack([attention_transfer_loss(teacher.attention[t], student.attention[s], token_mask)
                                      for s, t in pairs]).mean()
    if student.hidden:
        losses["hidden"] = torch.stack([hidden_state_loss(teacher.hidden[t], student.hidden[s], token_mask)
                                        for s, t in pairs]).mean()
    return losses
