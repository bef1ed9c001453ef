"""The proof built into export: llama.cpp must tokenize and predict like the torch model it came from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from slm_studio.llama import open_llama

PROOF_TEXT = (
    "Knowledge distillation trains a small student model to imitate a larger teacher. The student sees the "
    "teacher's full probability distribution over the next token, not only the correct answer, so it learns "
    "which mistakes are reasonable.\n\ndef fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n"
    "        a, b = b, a + b\n    return a\n\nThe capital of France is Paris; the capital of Japan is Tokyo."
)


@dataclass
class Proof:
    agreement: float  # share of positions where llama.cpp and torch pick the same next token
    max_logit_diff: float
    positions: int
    tokenizer_match: bool  # llama.cpp tokenizes the proof text exactly like the HF tokenizer


def prove(gguf_path: Path, model, tokenizer) -> Proof:
    ids = tokenizer(PROOF_TEXT, add_special_tokens=False)["input_ids"]
    llm = open_llama(gguf_path, n_ctx=len(ids) + 8, logits_all=True)
    try:
        llama_ids = llm.tokenize(PROOF_TEXT.encode("utf-8"), add_bos=False, special=False)
        llm.eval(ids)
        theirs = np.asarray(llm.scores[:len(ids)], dtype=np.float32)
    finally:
        llm.close()
    with torch.inference_mode():
        ours = model(torch.tensor([ids])).logits[0].float().numpy()
    agree = float((theirs.argmax(-1) == ours.argmax(-1)).mean())
    return Proof(agreement=agree, max_logit_diff=float(np.abs(theirs - ours).max()), positions=len(ids),
                 tokenizer_match=list(llama_ids) == list(ids))
