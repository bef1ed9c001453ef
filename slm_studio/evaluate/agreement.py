"""How closely a student follows its teacher on held-out text: top-1 agreement and mean KL(teacher || student)
at T=1, over the real target tokens. Vocabulary-sized logits exist only a chunk of tokens at a time."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from slm_studio.data.corpus import TokenizedData
from slm_studio.distill.losses import forward_kl


@dataclass
class Agreement:
    top1: float  # share of target positions where student and teacher rank the same token first
    mean_kl: float  # mean KL(teacher || student) per target position, in nats
    tokens: int


@torch.inference_mode()
def agreement(teacher, student, data: TokenizedData, batch_size: int, chunk_tokens: int = 256) -> Agreement:
    matches, kl_sum, tokens = 0, 0.0, 0
    for start in range(0, len(data), batch_size):
        rows = slice(start, start + batch_size)
        real = data.target_mask[rows, 1:].bool()  # position t predicts token t+1
        t_hidden = _hidden(teacher, data, rows)[:, :-1][real]
        s_hidden = _hidden(student, data, rows)[:, :-1][real]
        for c in range(0, len(t_hidden), chunk_tokens):
            log_t = F.log_softmax(teacher.get_output_embeddings()(t_hidden[c:c + chunk_tokens]).float(), dim=-1)
            log_s = F.log_softmax(student.get_output_embeddings()(s_hidden[c:c + chunk_tokens]).float(), dim=-1)
            matches += int((log_t.argmax(-1) == log_s.argmax(-1)).sum())
            kl_sum += float(forward_kl(log_t, log_s).sum())
            tokens += len(log_t)
    return Agreement(top1=matches / max(tokens, 1), mean_kl=kl_sum / max(tokens, 1), tokens=tokens)


def _hidden(model, data: TokenizedData, rows: slice) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    return model.base_model(input_ids=data.input_ids[rows].to(device),
                            attention_mask=data.attention_mask[rows].to(device)).last_hidden_state
