"""Held-out perplexity: exp of the mean next-token cross-entropy over the target tokens, from a torch model
or from a GGUF file in llama.cpp (the same tokens, so the two numbers compare)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from slm_studio.data.corpus import TokenizedData
from slm_studio.distill.losses import hard_label_loss, next_token_view
from slm_studio.llama import open_llama


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
    return perplexity_from(total_ce, total_tokens)


def perplexity_from(total_ce: float, tokens: int) -> float:
    """exp(mean cross-entropy), capped so an untrained model's astronomic value stays a finite float."""
    return math.exp(min(total_ce / max(tokens, 1), 700.0))


def gguf_perplexity(path: Path, data: TokenizedData, threads: int | None = None) -> float:
    """llama.cpp's logits for every held-out sequence (one evaluation each, from an empty cache)."""
    seq_len = data.input_ids.shape[1]
    llm = open_llama(path, n_ctx=seq_len, logits_all=True, n_batch=seq_len, n_threads=threads or os.cpu_count() or 1)
    total_ce, total_tokens = 0.0, 0
    try:
        for row in range(len(data)):
            n = int(data.attention_mask[row].sum())
            ids = data.input_ids[row, :n].tolist()
            llm.reset()
            llm.eval(ids)
            ce, tokens = _sequence_ce(np.asarray(llm.scores[:n - 1], dtype=np.float32), np.asarray(ids[1:]),
                                      data.target_mask[row, 1:n].numpy().astype(bool))
            total_ce += ce
            total_tokens += tokens
    finally:
        llm.close()
    return perplexity_from(total_ce, total_tokens)


def _sequence_ce(logits: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    """(summed cross-entropy, token count) over the masked positions of one sequence."""
    logits, labels = logits[mask].astype(np.float64), labels[mask]
    top = logits.max(-1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(-1))
    return float((log_z - logits[np.arange(len(labels)), labels]).sum()), int(mask.sum())
