"""Distillation losses as pure tensor functions.

Logits are [..., vocab]; `mask` is [...] with 1 on the real (non-padding, non-masked) tokens. Every loss is a
mean over those tokens: not over the batch (which `kl_div(reduction="batchmean")` would give for 3-D inputs).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SOFT_LOSSES = ("forward_kl", "reverse_kl", "jsd")


def masked_mean(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp(min=1)


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per token, summed over the vocabulary."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def forward_kl(log_t: torch.Tensor, log_s: torch.Tensor) -> torch.Tensor:
    return _kl(log_t, log_s)


def reverse_kl(log_t: torch.Tensor, log_s: torch.Tensor) -> torch.Tensor:
    return _kl(log_s, log_t)


def generalized_jsd(log_t: torch.Tensor, log_s: torch.Tensor, beta: float) -> torch.Tensor:
    """beta*KL(t||m) + (1-beta)*KL(s||m) with m = beta*t + (1-beta)*s, divided by beta*(1-beta):
    the division makes it tend to forward KL as beta -> 0 and to reverse KL as beta -> 1."""
    log_m = torch.logsumexp(torch.stack([log_t + math.log(beta), log_s + math.log(1 - beta)]), dim=0)
    jsd = beta * _kl(log_t, log_m) + (1 - beta) * _kl(log_s, log_m)
    return jsd / (beta * (1 - beta))


def divergence(log_t: torch.Tensor, log_s: torch.Tensor, kind: str = "forward_kl", beta: float = 0.5) -> torch.Tensor:
    """Per-token divergence between teacher and student log-probabilities (any number of buckets)."""
    if kind == "forward_kl":
        return forward_kl(log_t, log_s)
    if kind == "reverse_kl":
        return reverse_kl(log_t, log_s)
    if kind == "jsd":
        return generalized_jsd(log_t, log_s, beta)
    raise ValueError(f"unknown soft loss {kind!r}; choose one of {SOFT_LOSSES}")


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor,
                     temperature: float = 2.0, kind: str = "forward_kl", beta: float = 0.5) -> torch.Tensor:
    """Divergence between teacher and student at temperature T, times T^2 (keeps gradient scale T-independent)."""
    log_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return masked_mean(divergence(log_t, log_s, kind, beta), mask) * temperature ** 2


def top_k_buckets(log_s: torch.Tensor, top_log_t: torch.Tensor, top_index: torch.Tensor):
    """Teacher and student distributions coarsened to the teacher's top k tokens plus one bucket for the rest:
    (log_t [..., k+1], log_s [..., k+1]). Divergences between them count the mass outside the top k."""
    top_log_s = log_s.gather(-1, top_index)
    return _with_rest(top_log_t.float()), _with_rest(top_log_s)


def _with_rest(top: torch.Tensor) -> torch.Tensor:
    inside = torch.logsumexp(top, dim=-1, keepdim=True).clamp(max=-1e-6)
    rest = torch.log(-torch.expm1(inside))  # log(1 - mass inside), computed without cancellation
    return torch.cat([top, rest], dim=-1)


def hard_label_loss(student_logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    per_token = F.cross_entropy(student_logits.float().flatten(0, -2), labels.flatten(), reduction="none")
    return masked_mean(per_token.view(labels.shape), mask)


def next_token_view(logits: torch.Tensor, input_ids: torch.Tensor, target_mask: torch.Tensor):
    """Align position t's logits with token t+1: (logits[:, :-1], labels, mask)."""
    return logits[:, :-1], input_ids[:, 1:], target_mask[:, 1:]


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      mask: torch.Tensor, alpha: float, temperature: float, kind: str = "forward_kl",
                      beta: float = 0.5) -> dict[str, torch.Tensor]:
    """{'loss': alpha * soft + (1 - alpha) * hard, 'kl': soft, 'ce': hard} over already aligned logits."""
    soft = soft_target_loss(student_logits, teacher_logits, mask, temperature, kind, beta)
    hard = hard_label_loss(student_logits, labels, mask)
    return {"loss": alpha * soft + (1 - alpha) * hard, "kl": soft, "ce": hard}
