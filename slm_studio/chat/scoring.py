"""How much the teacher agrees with each token of a student's reply, scored in llama.cpp.

The teacher reads the same prompt and the student's reply in one batch (logits for every position) and gives,
for each reply token, the probability it would have given that token and its own first choice there. The chat
colours the student's reply with it: where the student said what the teacher would not have.
"""

from __future__ import annotations

import codecs
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slm_studio.errors import UserError
from slm_studio.llama import LLAMA_LOCK, open_llama

# teacher probability of the student's token: >= 50% agreed, >= 10% plausible, >= 1% unlikely, below: surprising
LEVEL_FLOORS = (0.5, 0.1, 0.01, 0.0)
LEVEL_NAMES = ("≥ 50%", "10–50%", "1–10%", "< 1%")
CONTEXT_STEP = 512  # the scorer's context grows in these steps (its logits buffer is n_ctx x vocab floats)


@dataclass
class TokenScore:
    token_id: int
    text: str  # the text this token completes ("" while a multi-byte character is still incomplete)
    teacher_prob: float  # the teacher's probability of this token, at temperature 1
    top_text: str  # the teacher's own first choice at this position
    top_prob: float

    @property
    def level(self) -> int:
        """0 (the teacher agreed) ... 3 (the teacher found it surprising): an index into LEVEL_FLOORS."""
        return agreement_level(self.teacher_prob)


def agreement_level(p: float) -> int:
    return next(i for i, floor in enumerate(LEVEL_FLOORS) if p >= floor)


_DIGESTS: dict[tuple[str, int], str] = {}


def vocabulary_digest(llm) -> str:
    """A fingerprint of a llama.cpp model's token list: two models share a tokenizer when these are equal.
    Remembered per file (49k calls into llama.cpp take a noticeable fraction of a second)."""
    path = Path(llm.model_path)
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    if key not in _DIGESTS:
        with LLAMA_LOCK:
            _DIGESTS[key] = _token_list_digest(llm)
    return _DIGESTS[key]


def _token_list_digest(llm) -> str:
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    digest = hashlib.sha256()
    for token in range(llama_cpp.llama_vocab_n_tokens(vocab)):
        digest.update(llama_cpp.llama_vocab_get_text(vocab, token) or b"")
        digest.update(b"\0")
    return digest.hexdigest()


def token_texts(llm, tokens: list[int]) -> list[str]:
    """Each token's share of the detokenized text; a character split over tokens goes to its last token."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return [decoder.decode(llm.detokenize([t])) for t in tokens]


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class TeacherScorer:
    """The chat's teacher GGUF opened a second time, with logits for every position (the chat's own session
    keeps only the last one, and may be busy answering on another thread)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.llm = None
        self.n_ctx = 0

    def _ensure_context(self, needed: int) -> None:
        if self.llm is not None and needed <= self.n_ctx:
            return
        self.close()
        self.n_ctx = math.ceil(needed / CONTEXT_STEP) * CONTEXT_STEP
        # one thread: the two chat sessions already keep the cores busy, and llama.cpp's spinning workers would
        # take the CPU from the window
        self.llm = open_llama(self.path, n_ctx=self.n_ctx, logits_all=True, n_threads=1, n_threads_batch=1)

    def digest(self) -> str:
        self._ensure_context(1)
        return vocabulary_digest(self.llm)

    def score(self, prompt_tokens: list[int], reply_tokens: list[int]) -> list[TokenScore]:
        """The teacher's probability of every reply token, given the prompt and the reply before it."""
        if not prompt_tokens:
            raise UserError("scoring needs the prompt the student answered")
        if not reply_tokens:
            return []
        tokens = [*prompt_tokens, *reply_tokens]
        self._ensure_context(len(tokens))
        with LLAMA_LOCK:
            self.llm.reset()
            self.llm.eval(tokens)
            # row i predicts token i + 1: the rows from the prompt's last token on predict the reply
            probs = softmax_rows(self.llm.scores[len(prompt_tokens) - 1:len(tokens) - 1])
            chosen = probs[np.arange(len(reply_tokens)), reply_tokens]
            best = probs.argmax(axis=-1)
            texts = token_texts(self.llm, reply_tokens)
            return [TokenScore(t, text, float(p), self.llm.detokenize([int(b)]).decode("utf-8", "replace"),
                               float(probs[i, b]))
                    for i, (t, text, p, b) in enumerate(zip(reply_tokens, texts, chosen, best))]

    def score_reply(self, student_llm, prompt_tokens: list[int], reply: str) -> list[TokenScore]:
        """Score a student's reply text (re-tokenized with the shared tokenizer); UserError when the student does
        not share the teacher's tokenizer."""
        if vocabulary_digest(student_llm) != self.digest():
            raise UserError("the teacher and the student do not share a tokenizer: no per-token colouring")
        reply_tokens = self.llm.tokenize(reply.encode("utf-8"), add_bos=False, special=False)
        return self.score(prompt_tokens, reply_tokens)

    def close(self) -> None:
        if self.llm is not None:
            self.llm.close()
            self.llm = None
