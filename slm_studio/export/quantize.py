"""Quantize a GGUF file with llama.cpp's own quantizer.

    slm-studio quantize runs/quick/gguf/student-F16.gguf runs/quick/gguf/student-Q8_0.gguf --type Q8_0
"""

from __future__ import annotations

import os
from pathlib import Path

from slm_studio.errors import UserError
from slm_studio.fileio import atomic_path
from slm_studio.llama import native_stderr_silenced, quiet_llama

# our name -> llama.cpp's file type constant (llama_cpp.LLAMA_FTYPE_*)
QUANT_TYPES = {
    "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "Q6_K": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "Q5_K_M": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "Q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
}


def quantize(source: Path, target: Path, quant: str, threads: int | None = None) -> Path:
    import llama_cpp

    from slm_studio.models.sources import ModelSource, describe

    if quant not in QUANT_TYPES:
        raise UserError(f"unknown quant type {quant!r}; choose from {', '.join(QUANT_TYPES)}")
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise UserError(f"GGUF file not found: {source}")
    describe(ModelSource(source.stem, "gguf", source))  # refuses damaged files before llama.cpp sees them
    quiet_llama()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[quant])
    params.nthread = threads or os.cpu_count() or 1
    with atomic_path(target) as tmp:
        with native_stderr_silenced():
            code = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), params)
        if code != 0:
            raise UserError(f"llama.cpp could not quantize {source.name} to {quant} (code {code})")
    return target
