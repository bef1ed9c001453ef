"""The memory-lean distillation loss: logits are made from hidden states a chunk of tokens at a time, and
recomputed in the backward pass, so no full [tokens, vocab] float32 tensor of teacher or student stays alive.

The teacher side of a chunk is either its live logits (from its own hidden states) or cached top-k
log-probabilities (`TeacherTopK`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from slm_studio.distill.losses import divergence, top_k_buckets

CHUNK_TOKENS = 256


@dataclass
class TeacherTopK:
    log_probs: torch.Tensor  # [n, k] teacher log-probabilities at temperature T, largest first
    index: torch.Tensor  # [n, k] their token ids


def chunked_distillation_loss(student_hidden: torch.Tensor, student_head: torch.Tensor, labels: torch.Tensor,
                              teacher, alpha: float, temperature: float, kind: str = "forward_kl",
                              beta: float = 0.5, chunk: int = CHUNK_TOKENS) -> dict[str, torch.Tensor]:
    """Loss over n real tokens. `student_hidden` [n, H] (requires grad), `student_head` [V, H];
    `teacher` is either (teacher_hidden [n, H'], teacher_head [V, H']) or a TeacherTopK.
    Returns {'loss', 'kl', 'ce'} as means over the n tokens, like `distillation_loss`."""
    n = student_hidden.shape[0]
    soft_sum = student_hidden.new_zeros((), dtype=torch.float32)
    hard_sum = student_hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, n, chunk):
        rows = slice(start, start + chunk)
        target = (teacher.log_probs[rows], teacher.index[rows]) if isinstance(teacher, TeacherTopK) else \
            (_teacher_log_probs(teacher[0][rows], teacher[1], temperature), None)
        soft, hard = checkpoint(_chunk_sums, student_hidden[rows], student_head, labels[rows], *target,
                                temperature, kind, beta, use_reentrant=False)
        soft_sum, hard_sum = soft_sum + soft, hard_sum + hard
    kl = soft_sum / max(n, 1) * temperature ** 2
    ce = hard_sum / max(n, 1)
    return {"loss": alpha * kl + (1 - alpha) * ce, "kl": kl, "ce": ce}


@torch.no_grad()
def _teacher_log_probs(hidden: torch.Tensor, head: torch.Tensor, temperature: float) -> torch.Tensor:
    return F.log_softmax((hidden @ head.T).float() / temperature, dim=-1)


def _chunk_sums(hidden, head, labels, log_t, top_index, temperature, kind, beta):
    logits = (hidden @ head.T).float()
    hard = F.cross_entropy(logits, labels, reduction="sum")
    log_s = F.log_softmax(logits / temperature, dim=-1)
    if top_index is not None:
        log_t, log_s = top_k_buckets(log_s, log_t, top_index)
    return divergence(log_t, log_s, kind, beta).sum(), hard


@torch.no_grad()
def teacher_top_k(teacher_hidden: torch.Tensor, teacher_head: torch.Tensor, temperature: float, k: int,
                  chunk: int = CHUNK_TOKENS) -> TeacherTopK:
    """Top-k teacher log-probabilities at temperature T for n tokens' hidden states [n, H]."""
    values, index = [], []
    for start in range(0, teacher_hidden.shape[0], chunk):
        log_t = _teacher_log_probs(teacher_hidden[start:start + chunk], teacher_head, temperature)
        top = log_t.topk(k, dim=-1)
        values.append(top.values)
        index.append(top.indices)
    return TeacherTopK(torch.cat(values), torch.cat(index))
