"""Load a model source into torch + tokenizer. GGUF teachers are dequantized once and cached as safetensors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import slm_studio  # noqa: F401  (sets the offline switches before transformers loads)
from slm_studio.errors import UserError
from slm_studio.events import Event, EventHandler, ignore_event
from slm_studio.fileio import atomic_dir
from slm_studio.models.gguf_scan import scan_gguf
from slm_studio.models.sources import ModelSource, describe


CACHE_FORMAT = 2  # bump when the cached folder's content changes


def cache_root() -> Path:
    return Path(os.environ.get("SLM_STUDIO_CACHE", Path.home() / ".cache" / "slm-studio"))


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def hf_folder(source: ModelSource, on_event: EventHandler = ignore_event) -> Path:
    """An HF folder holding the source's weights and tokenizer (for GGUF: the cached dequantized copy)."""
    if source.kind == "hf":
        return source.path
    describe(source)  # a damaged file gets gguf-py's clear message, not a deep transformers error
    folder = cache_root() / "gguf" / f"{source.path.stem}-{file_digest(source.path)}-v{CACHE_FORMAT}"
    if not (folder / "config.json").exists():
        on_event(Event("load", message=f"Dequantizing {source.path.name} once (about 40 s); later loads are fast"))
        with atomic_dir(folder) as tmp:
            _dequantize_gguf(source.path, tmp)
    return folder


def _dequantize_gguf(path: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except Exception as exc:  # transformers raises many types for damaged or unsupported GGUF files
        raise UserError(f"cannot load {path} ({type(exc).__name__}: {str(exc)[:200]})") from None
    # A GGUF-loaded model refuses save_pretrained: rebuild it from a config without the gguf quantization marker.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.gguf_tokenizer_pre = scan_gguf(path).fields.get("tokenizer.ggml.pre")  # kept for our own GGUF export
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def quiet_transformers() -> None:
    """Our own progress reporting replaces transformers' tqdm bars and load reports."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    quiet_transformers()
    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as exc:
        raise UserError(f"cannot load the tokenizer in {folder} ({type(exc).__name__}: {str(exc)[:200]})") from None


def load_model(folder: Path, device: str = "cpu"):
    import torch
    from transformers import AutoModelForCausalLM

    quiet_transformers()
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
    except Exception as exc:
        raise UserError(f"cannot load the model in {folder} ({type(exc).__name__}: {str(exc)[:200]})") from None
    return model.to(device)


def load(source: ModelSource, device: str = "cpu", on_event: EventHandler = ignore_event):
    """(model, tokenizer, folder) for any source."""
    folder = hf_folder(source, on_event)
    return load_model(folder, device), load_tokenizer(folder), folder
