"""The memory-lean distillation loss: logits are made from hidden states a chunk of tokens at a time, and each
chunk's gradients (for the hidden states and the vocabulary matrix) are computed right there in the forward pass
and summed in place, so no full [tokens, vocab] float32 tensor of teacher or student stays alive and no logits
are computed twice. The loss is the last thing before `backward()`, so its gradient is known up to a scale.

The teacher side of a chunk is either its live logits (from its own hidden states) or its cached top-k
log-probabilities with tokens drawn from the rest of its distribution (`TeacherTopK`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from slm_studio.distill.losses import divergence, top_k_buckets

CHUNK_TOKENS = 64
SLICE_ROWS = 4096  # vocabulary rows per block when adding up the matrix's gradient


@dataclass
class TeacherTopK:
    """The teacher's distribution at temperature T, cached per token: its k most likely tokens, and m tokens drawn
    from the rest in proportion to their probability (at T = 2 the rest holds most of the mass: 62% outside the
    top 256 for SmolLM2 on Python docs)."""
    log_probs: torch.Tensor  # [n, k] log-probabilities, largest first
    index: torch.Tensor  # [n, k] their token ids
    tail_index: torch.Tensor | None = None  # [n, m] tokens drawn from outside the top k
    tail_plogp: torch.Tensor | None = None  # [n] sum of p log p outside the top k

    def map(self, fn) -> TeacherTopK:
        """The same cache with `fn` applied to each tensor (selecting rows, moving to a device)."""
        return TeacherTopK(*(None if t is None else fn(t) for t in
                             (self.log_probs, self.index, self.tail_index, self.tail_plogp)))


def chunked_distillation_loss(student_hidden: torch.Tensor, student_head: torch.Tensor, labels: torch.Tensor,
                              teacher, alpha: float, temperature: float, kind: str = "forward_kl",
                              beta: float = 0.5, chunk: int = CHUNK_TOKENS) -> dict[str, torch.Tensor]:
    """Loss over n real tokens. `student_hidden` [n, H] (requires grad), `student_head` [V, H];
    `teacher` is either (teacher_hidden [n, H'], teacher_head [V, H']) or a TeacherTopK.
    Returns {'loss', 'kl', 'ce'} as means over the n tokens, like `distillation_loss`; only 'loss' has a gradient."""
    loss, kl, ce = _ChunkedLoss.apply(student_hidden, student_head, labels, teacher, alpha, temperature, kind,
                                      beta, chunk)
    return {"loss": loss, "kl": kl, "ce": ce}


class _ChunkedLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, head, labels, teacher, alpha, temperature, kind, beta, chunk):
        n = hidden.shape[0]
        # under autocast the vocabulary projection runs in the autocast type: cast the matrix once, not per chunk
        device = hidden.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else head.dtype
        weight = head.detach().to(dtype).requires_grad_()
        grad_head = torch.zeros_like(head, dtype=torch.float32)
        grad_hidden = torch.empty_like(hidden)
        soft_sum = hard_sum = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, n, chunk):
            rows = slice(start, start + chunk)
            target = teacher.map(lambda t, rows=rows: t[rows]) if isinstance(teacher, TeacherTopK) else \
                _teacher_log_probs(teacher[0][rows], teacher[1], temperature)
            if kind == "forward_kl" and not (isinstance(target, TeacherTopK) and target.tail_index is None):
                soft, hard, grad_h = _forward_kl_chunk(hidden[rows], weight.detach(), labels[rows], target, alpha,
                                                       temperature, max(n, 1), grad_head)
            else:
                with torch.enable_grad():
                    h = hidden[rows].detach().requires_grad_()
                    soft, hard = _chunk_sums(h, weight, labels[rows], target, temperature, kind, beta)
                    loss = (alpha * temperature ** 2 * soft + (1 - alpha) * hard) / max(n, 1)
                    grad_h, grad_w = torch.autograd.grad(loss, (h, weight))
                _add_in_slices(grad_head, grad_w)
            grad_hidden[rows] = grad_h
            soft_sum, hard_sum = soft_sum + soft.detach(), hard_sum + hard.detach()
        ctx.grads = grad_hidden, grad_head.to(head.dtype)
        kl = soft_sum / max(n, 1) * temperature ** 2
        ce = hard_sum / max(n, 1)
        ctx.mark_non_differentiable(kl, ce)
        return alpha * kl + (1 - alpha) * ce, kl, ce

    @staticmethod
    def backward(ctx, grad_loss, _grad_kl, _grad_ce):
        grad_hidden, grad_head = ctx.grads
        ctx.grads = None
        return grad_hidden.mul_(grad_loss), grad_head.mul_(grad_loss), None, None, None, None, None, None, None


@torch.no_grad()
def _forward_kl_chunk(hidden, weight, labels, teacher, alpha, temperature, n, grad_head):
    """The default loss, alpha * T^2 * forward KL + (1 - alpha) * CE, for one chunk with its gradients written out
    rather than taken by autograd: with respect to the logits they are alpha * T * (q_T - p) / n and
    (1 - alpha) * (softmax - onehot) / n, so two [chunk, vocab] float32 buffers do, where autograd keeps several.
    Returns (sum of KL, sum of CE, gradient for the hidden states); adds the matrix's gradient to `grad_head`."""
    h = hidden.to(weight.dtype)
    logits = (h @ weight.T).float()
    lse = torch.logsumexp(logits, -1, keepdim=True)
    hard = (lse.squeeze(-1) - logits.gather(-1, labels[:, None]).squeeze(-1)).sum()
    log_q = logits / temperature
    log_q -= torch.logsumexp(log_q, -1, keepdim=True)
    if isinstance(teacher, TeacherTopK):  # over the top k exact; over the rest, sum p log p exact (cached) and
        # -sum p log q estimated by the drawn tokens, each standing for (rest mass) / m: unbiased, gradient too
        top_log_p, top_index, tail_index = teacher.log_probs.float(), teacher.index.long(), teacher.tail_index.long()
        top_p = top_log_p.exp()
        tail_p = ((1 - top_p.sum(-1, keepdim=True)).clamp(min=0) / tail_index.shape[-1]).expand(tail_index.shape)
        soft = ((top_p * (top_log_p - log_q.gather(-1, top_index))).sum() + teacher.tail_plogp.float().sum()
                - (tail_p * log_q.gather(-1, tail_index)).sum())
        grad = log_q.exp_().scatter_add_(-1, top_index, -top_p).scatter_add_(-1, tail_index, -tail_p.contiguous())
    else:  # the live teacher's log-probabilities
        p = teacher.exp()
        soft = (p * (teacher - log_q)).sum()
        grad = log_q.exp_().sub_(p)
        del p
    grad.mul_(alpha * temperature / n)
    softmax = logits.sub_(lse).exp_()
    softmax.scatter_add_(-1, labels[:, None], torch.full_like(lse, -1.0))
    grad = grad.add_(softmax, alpha=(1 - alpha) / n).to(weight.dtype)
    del softmax, logits
    for start in range(0, len(grad_head), SLICE_ROWS):  # the matrix's gradient a block of rows at a time
        rows = slice(start, start + SLICE_ROWS)
        grad_head[rows] += (grad[:, rows].T @ h).float()
    return soft, hard, (grad @ weight).to(hidden.dtype)


def _add_in_slices(total: torch.Tensor, part: torch.Tensor) -> None:
    """total += part, a block of rows at a time: adding a bf16 tensor to a float32 one converts it whole first."""
    for start in range(0, len(total), SLICE_ROWS):
        total[start:start + SLICE_ROWS] += part[start:start + SLICE_ROWS]


@torch.no_grad()
def _teacher_log_probs(hidden: torch.Tensor, head: torch.Tensor, temperature: float) -> torch.Tensor:
    return F.log_softmax((hidden @ head.T).float() / temperature, dim=-1)


def _chunk_sums(hidden, head, labels, teacher, temperature, kind, beta):
    logits = (hidden @ head.T).float()
    hard = F.cross_entropy(logits, labels, reduction="sum")
    log_s = F.log_softmax(logits / temperature, dim=-1)
    if not isinstance(teacher, TeacherTopK):
        return divergence(teacher, log_s, kind, beta).sum(), hard
    # reverse KL and JSD weigh the teacher's probability of each token the student favours: unknown outside
    # the top k, so the rest counts as one bucket (forward KL with tail samples takes `_forward_kl_chunk`)
    log_t, log_s = top_k_buckets(log_s, teacher.log_probs.float(), teacher.index.long())
    return divergence(log_t, log_s, kind, beta).sum(), hard


@torch.no_grad()
def teacher_top_k(teacher_hidden: torch.Tensor, teacher_head: torch.Tensor, temperature: float, k: int,
                  tail_samples: int = 0, generator: torch.Generator | None = None,
                  chunk: int = CHUNK_TOKENS) -> TeacherTopK:
    """The teacher's top-k log-probabilities at temperature T for n tokens' hidden states [n, H], and
    `tail_samples` tokens per position drawn from outside the top k."""
    parts = [_top_k_and_tail(_teacher_log_probs(teacher_hidden[start:start + chunk], teacher_head, temperature),
                             k, tail_samples, generator)
             for start in range(0, teacher_hidden.shape[0], chunk)]
    return TeacherTopK(*(torch.cat(column) if column[0] is not None else None for column in zip(*parts)))


def _top_k_and_tail(log_t: torch.Tensor, k: int, m: int, generator):
    top = log_t.topk(k, dim=-1)
    if not m:
        return top.values, top.indices, None, None
    p_rest = log_t.exp().scatter_(-1, top.indices, 0.0)
    plogp = torch.where(p_rest > 0, p_rest * log_t, 0.0).sum(-1)
    # systematic sampling: m evenly spaced points on the rest's cumulative mass, one random offset per position;
    # token j is drawn p_j / rest * m times on average, and tokens of the top k never
    cdf = p_rest.cumsum(-1)
    offset = torch.rand(len(cdf), 1, generator=generator, device=cdf.device)
    points = (torch.arange(m, device=cdf.device) + offset) / m * cdf[:, -1:]
    drawn = torch.searchsorted(cdf, points, right=True).clamp_(max=cdf.shape[-1] - 1)
    return top.values, top.indices, drawn, plogp
