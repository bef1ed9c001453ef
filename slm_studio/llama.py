"""Opening GGUF files in llama.cpp (llama-cpp-python) the one way the project does it."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from slm_studio.errors import UserError


def quiet_llama() -> None:
    """llama.cpp's loader and quantizer print per-tensor notes; keep only errors."""
    import llama_cpp._logger

    llama_cpp._logger.logger.setLevel(logging.ERROR)


@contextmanager
def native_stderr_silenced():
    """llama.cpp's quantizer writes a warning per tensor straight to file descriptor 2; hide them meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def open_llama(path: Path, n_ctx: int = 512, logits_all: bool = False, **kwargs):
    """llama.cpp's model for a GGUF file, after gguf-py has read it (a damaged file never reaches llama.cpp)."""
    from llama_cpp import Llama

    from slm_studio.models.sources import ModelSource, describe

    path = Path(path)
    if not path.is_file():
        raise UserError(f"GGUF file not found: {path}")
    describe(ModelSource(path.stem, "gguf", path))
    quiet_llama()
    try:
        return Llama(model_path=str(path), n_ctx=n_ctx, logits_all=logits_all, verbose=False, **kwargs)
    except Exception as exc:  # llama-cpp-python raises ValueError with little detail
        raise UserError(f"llama.cpp cannot load {path.name} ({exc})") from None
