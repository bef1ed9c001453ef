"""How closely a student follows its teacher on held-out text: top-1 agreement, mean KL(teacher || student) at
T=1, and both models' perplexity, over the real target tokens, in one forward pass of each model.

The teacher's hidden states are computed once and reused for every student compared with it; vocabulary-sized
logits exist only a chunk of tokens at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from slm_studio.data.corpus import TokenizedData
from slm_studio.distill.losses import forward_kl
from slm_studio.evaluate.perplexity import perplexity_from


@dataclass
class Agreement:
    top1: float  # share of target positions where student and teacher rank the same token first
    mean_kl: float  # mean KL(teacher || student) per target position, in nats
    teacher_ppl: float
    student_ppl: float
    tokens: int


@torch.inference_mode()
def target_hidden_states(model, data: TokenizedData, batch_size: int) -> torch.Tensor:
    """[target tokens, hidden]: the final hidden state at every position that predicts a target token."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(data), batch_size):
        rows = slice(start, start + batch_size)
        hidden = model.base_model(input_ids=data.input_ids[rows].to(device),
                                  attention_mask=data.attention_mask[rows].to(device)).last_hidden_state
        out.append(hidden[:, :-1][data.target_mask[rows, 1:].bool().to(device)])  # position t predicts t+1
    return torch.cat(out)


@torch.inference_mode()
def agreement(teacher, student, data: TokenizedData, batch_size: int, teacher_hidden: torch.Tensor | None = None,
              chunk_tokens: int = 256) -> Agreement:
    if teacher_hidden is None:
        teacher_hidden = target_hidden_states(teacher, data, batch_size)
    student_hidden = target_hidden_states(student, data, batch_size)
    labels = data.input_ids[:, 1:][data.target_mask[:, 1:].bool()].to(student_hidden.device)
    matches, kl, t_ce, s_ce = 0, 0.0, 0.0, 0.0
    for c in range(0, len(labels), chunk_tokens):
        log_t = F.log_softmax(teacher.get_output_embeddings()(teacher_hidden[c:c + chunk_tokens]).float(), dim=-1)
        log_s = F.log_softmax(student.get_output_embeddings()(student_hidden[c:c + chunk_tokens]).float(), dim=-1)
        target = labels[c:c + chunk_tokens]
        matches += int((log_t.argmax(-1) == log_s.argmax(-1)).sum())
        kl += float(forward_kl(log_t, log_s).sum())
        t_ce += float(F.nll_loss(log_t, target, reduction="sum"))
        s_ce += float(F.nll_loss(log_s, target, reduction="sum"))
    n = len(labels)
    return Agreement(top1=matches / max(n, 1), mean_kl=kl / max(n, 1), teacher_ppl=perplexity_from(t_ce, n),
                     student_ppl=perplexity_from(s_ce, n), tokens=n)
