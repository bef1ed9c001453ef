"""The GGUF files an evaluation measures: the run's student (RUN_DIR/gguf/) and its teacher (exported once and
cached), each at F16 and the asked quant levels. Existing files are reused; missing ones are made."""

from __future__ import annotations

import hashlib
from pathlib import Path

from slm_studio.events import Event, EventHandler, ignore_event
from slm_studio.export.gguf import export_gguf
from slm_studio.export.quantize import quantize
from slm_studio.models.loading import cache_root

FLOAT = "F16"


def student_ggufs(run_dir: Path, quants: list[str], on_event: EventHandler = ignore_event) -> dict[str, Path]:
    return _ensure(Path(run_dir), Path(run_dir) / "gguf", "student", quants, "student", on_event)


def teacher_ggufs(folder: Path, quants: list[str], on_event: EventHandler = ignore_event) -> dict[str, Path]:
    return _ensure(folder, teacher_cache_dir(folder), folder.name, quants, "teacher", on_event)


def teacher_cache_dir(folder: Path) -> Path:
    """One cache folder per teacher folder and weights file version (its path, size and modification time)."""
    weights = sorted(Path(folder).glob("*.safetensors"))
    key = str(Path(folder).resolve()) + "".join(f"|{w.name}:{w.stat().st_size}:{w.stat().st_mtime_ns}"
                                                 for w in weights)
    return cache_root() / "eval-gguf" / f"{Path(folder).name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _ensure(source: Path, out_dir: Path, stem: str, quants: list[str], who: str, on_event) -> dict[str, Path]:
    files = {q: out_dir / f"{stem}-{q}.gguf" for q in [FLOAT, *quants]}
    if not files[FLOAT].exists():
        on_event(Event("evaluate", message=f"exporting the {who} to GGUF {FLOAT} (proved in llama.cpp)"))
        export_gguf(source, out_dir, FLOAT)
    for quant, path in files.items():
        if not path.exists():
            on_event(Event("evaluate", message=f"quantizing the {who} to {quant}"))
            quantize(files[FLOAT], path, quant)
    return files
