"""Chat sessions over llama.cpp: a generator that streams text pieces, with per-reply speed statistics.

Each session owns its own llama.cpp context, so two sessions (teacher and student) can answer the same
conversation from two threads without waiting for each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from slm_studio.errors import UserError
from slm_studio.events import CancelToken
from slm_studio.llama import LLAMA_LOCK, open_llama


@dataclass
class ChatSettings:
    system_prompt: str = ""
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    repeat_penalty: float = 1.1
    max_tokens: int = 256
    seed: int = 0
    stop: list[str] = field(default_factory=list)


@dataclass
class ReplyStats:
    time_to_first_token_s: float = 0.0
    prompt_tokens: int = 0
    prompt_tokens_per_s: float = 0.0
    generated_tokens: int = 0
    generation_tokens_per_s: float = 0.0
    total_s: float = 0.0

    def line(self) -> str:
        return (f"{self.generation_tokens_per_s:.1f} tokens/s, first token {self.time_to_first_token_s * 1000:.0f} ms, "
                f"{self.generated_tokens} tokens generated, prompt {self.prompt_tokens} tokens at "
                f"{self.prompt_tokens_per_s:.0f} tokens/s")


class ChatSession:
    def __init__(self, model_path: Path, n_ctx: int = 2048, threads: int | None = None) -> None:
        self.path = Path(model_path)
        self.n_ctx = n_ctx  # llama.cpp may round its context up; llama-cpp-python's buffers keep this size
        self.llm = open_llama(self.path, n_ctx=n_ctx, n_threads=threads)
        metadata = self.llm.metadata
        template = metadata.get("tokenizer.chat_template")
        if not template:
            raise UserError(f"{self.path.name} has no chat template (tokenizer.chat_template)")
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        vocab = lambda key: self.llm.detokenize([int(metadata[key])], special=True).decode() if key in metadata else ""
        self.formatter = Jinja2ChatFormatter(template, eos_token=vocab("tokenizer.ggml.eos_token_id"),
                                             bos_token=vocab("tokenizer.ggml.bos_token_id"))
        self.last_stats = ReplyStats()
        self.last_prompt_tokens: list[int] = []  # what the last reply answered (for scoring it)

    @property
    def name(self) -> str:
        return self.path.name

    def stream(self, messages: list[dict], settings: ChatSettings | None = None,
               cancel: CancelToken | None = None) -> Iterator[str]:
        """Yield the reply to `messages` piece by piece; `last_stats` holds its numbers once it ends."""
        import llama_cpp

        settings = settings or ChatSettings()
        if settings.system_prompt and not (messages and messages[0]["role"] == "system"):
            messages = [{"role": "system", "content": settings.system_prompt}, *messages]
        formatted = self.formatter(messages=messages)
        with LLAMA_LOCK:
            prompt_tokens = self.llm.tokenize(formatted.prompt.encode("utf-8"), add_bos=False, special=True)
        if len(prompt_tokens) + settings.max_tokens > self.n_ctx:
            raise UserError(f"the conversation ({len(prompt_tokens)} tokens) plus max_tokens "
                            f"{settings.max_tokens} exceeds the context of {self.n_ctx} tokens; Clear it")
        stop = [s for s in [*(formatted.stop if isinstance(formatted.stop, list) else [formatted.stop] if
                              formatted.stop else []), *settings.stop] if s]
        self.last_prompt_tokens = list(prompt_tokens)
        llama_cpp.llama_perf_context_reset(self.llm.ctx)
        start = time.perf_counter()
        first = None
        chunks = self.llm.create_completion(
            prompt_tokens, max_tokens=settings.max_tokens, temperature=settings.temperature, top_p=settings.top_p,
            top_k=settings.top_k, repeat_penalty=settings.repeat_penalty, seed=settings.seed, stop=stop, stream=True)
        while True:
            with LLAMA_LOCK:
                chunk = next(chunks, None)
            if chunk is None:
                break
            first = first or time.perf_counter()
            yield chunk["choices"][0]["text"]
            if cancel is not None and cancel.cancelled:
                break
        self.last_stats = self._stats(start, first, time.perf_counter())

    def _stats(self, start: float, first: float | None, end: float) -> ReplyStats:
        import llama_cpp

        perf = llama_cpp.llama_perf_context(self.llm.ctx)
        return ReplyStats(
            time_to_first_token_s=(first or end) - start, prompt_tokens=perf.n_p_eval,
            prompt_tokens_per_s=perf.n_p_eval / max(perf.t_p_eval_ms, 1e-9) * 1000,
            generated_tokens=perf.n_eval,
            generation_tokens_per_s=perf.n_eval / max(perf.t_eval_ms, 1e-9) * 1000, total_s=end - start)

    def close(self) -> None:
        self.llm.close()


def resolve_chat_model(spec: str) -> Path:
    """A .gguf path, a run directory (its exported GGUF, smallest quant first) or a bundled teacher's name."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        for name in ("student-Q4_K_M.gguf", "student-Q8_0.gguf", "student-F16.gguf"):
            if (path / "gguf" / name).exists():
                return path / "gguf" / name
        found = sorted((path / "gguf").glob("*.gguf")) if (path / "gguf").is_dir() else []
        if found:
            return found[0]
        raise UserError(f"{path} holds no exported GGUF; run: slm-studio export {path}")
    from slm_studio.models.sources import resolve

    source = resolve(spec)
    if source.kind != "gguf":
        raise UserError(f"{spec} is not a GGUF model; export it first")
    return source.path
