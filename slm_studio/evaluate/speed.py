"""llama.cpp speed of a GGUF file: prompt processing and greedy generation, in tokens per second."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from slm_studio.llama import open_llama

PROMPT = "Knowledge distillation is a way to train a small model from a large one. It works because"


class DecodeSpeed(NamedTuple):
    prompt_tps: float  # prompt tokens per second (one batched evaluation of the prompt)
    generation_tps: float  # generated tokens per second (one token per evaluation)


def decode_tokens_per_s(path: Path, n_tokens: int = 128, threads: int | None = None,
                        prompt_tokens: int = 128) -> DecodeSpeed:
    """Speed over a `prompt_tokens`-token prompt, then `n_tokens` greedy tokens (EOS ignored, so every model
    decodes the same number of tokens)."""
    llm = open_llama(path, n_ctx=prompt_tokens + n_tokens + 8, n_threads=threads or os.cpu_count() or 1)
    try:
        prompt = llm.tokenize((PROMPT * 16).encode())[:prompt_tokens]
        llm.eval(prompt[:8])  # the first evaluation pays for reading the mapped weights from disk: not timed
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt)
        prompt_tps = len(prompt) / (time.perf_counter() - start)
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        start = time.perf_counter()
        for _ in range(n_tokens):
            llm.eval([token])
            token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        generation_tps = n_tokens / (time.perf_counter() - start)
    finally:
        llm.close()
    return DecodeSpeed(prompt_tps, generation_tps)
