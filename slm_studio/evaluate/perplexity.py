"""Held-out perplexity: exp of the mean next-token cross-entropy over the target tokens."""

from __future__ import annotations

import math

import torch

from slm_studio.data.corpus import TokenizedData
from slm_studio.distill.losses import hard_label_loss, next_token_view


@torch.inference_mode()
def perplexity(model, data: TokenizedData, batch_size: int, max_batches: int | None = None) -> float:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_ce, total_tokens = 0.0, 0
    n = len(data) if max_batches is None else min(len(data), batch_size * max_batches)
    for start in range(0, n, batch_size):
        ids = data.input_ids[start:start + batch_size].to(device)
        attention = data.attention_mask[start:start + batch_size].to(device)
        logits = model(input_ids=ids, attention_mask=attention).logits
        logits, labels, mask = next_token_view(logits, ids, data.target_mask[start:start + batch_size].to(device))
        tokens = int(mask.sum())
        total_ce += float(hard_label_loss(logits, labels, mask)) * tokens
        total_tokens += tokens
    model.train(was_training)
    return math.exp(min(total_ce / max(total_tokens, 1), 700.0))
