"""Opening GGUF files in llama.cpp (llama-cpp-python) the one way the project does it."""

from __future__ import annotations

import logging
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from slm_studio.errors import UserError

# One thread in llama-cpp-python at a time (the chat's two panes and the teacher scoring a reply run on three
# worker threads). While it loads a model, llama-cpp-python points file descriptors 1 and 2 (and sys.stdout,
# sys.stderr) at /dev/null and back: two loads at once restored each other's /dev/null and the process lost its
# output for good. Decoding in one instance while another decoded or detokenized crashed the interpreter
# ("none_dealloc", measured in the chat with colouring). Loads hold this lock throughout; generation takes it per
# token, so the panes alternate token by token (llama.cpp's own timings, which the stats show, exclude the waits).
LLAMA_LOCK = threading.Lock()


def quiet_llama() -> None:
    """llama.cpp's loader and quantizer print per-tensor notes; keep only errors."""
    import llama_cpp._logger

    llama_cpp._logger.logger.setLevel(logging.ERROR)


@contextmanager
def native_stderr_silenced():
    """llama.cpp's quantizer writes a warning per tensor straight to file descriptor 2; hide them meanwhile."""
    with LLAMA_LOCK:
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
        with LLAMA_LOCK:
            return Llama(model_path=str(path), n_ctx=n_ctx, logits_all=logits_all, verbose=False, **kwargs)
    except Exception as exc:  # llama-cpp-python raises ValueError with little detail
        raise UserError(f"llama.cpp cannot load {path.name} ({exc})") from None
