"""Export a run's student (or any local HF Llama folder) to GGUF, prove it in llama.cpp, quantize it.

    slm-studio export runs/quick --quant Q8_0 Q4_K_M
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from slm_studio.errors import Cancelled, UserError
from slm_studio.events import CancelToken, Event, EventHandler, ignore_event
from slm_studio.export.gguf_writer import FLOAT_TYPES, write_gguf
from slm_studio.export.proof import Proof, prove
from slm_studio.export.quantize import QUANT_TYPES, quantize
from slm_studio.fileio import atomic_path

MIN_AGREEMENT = {"F32": 0.99, "F16": 0.98}


@dataclass
class ExportResult:
    float_path: Path
    proof: Proof
    files: dict[str, Path] = field(default_factory=dict)  # type name -> file, F16 or F32 first

    def sizes(self) -> dict[str, int]:
        return {name: path.stat().st_size for name, path in self.files.items()}


def model_folder(path: Path) -> Path:
    """A run directory's student/, or the HF folder itself."""
    path = Path(path)
    if (path / "student" / "config.json").exists():
        return path / "student"
    if (path / "config.json").exists():
        return path
    if (path / "run.toml").exists():
        raise UserError(f"{path} holds no finished student yet (student/ is missing); finish or resume the run")
    raise UserError(f"{path} is neither a run directory nor a Hugging Face model folder")


def default_out_dir(path: Path) -> Path:
    path = Path(path)
    return path / "gguf" if (path / "run.toml").exists() else path.parent / f"{path.name}-gguf"


def export_gguf(path: Path, out_dir: Path | None = None, float_type: str = "F16", quants: list[str] = (),
                on_event: EventHandler = ignore_event, cancel: CancelToken | None = None) -> ExportResult:
    if float_type not in FLOAT_TYPES:
        raise UserError(f"unknown float type {float_type!r}; choose F16 or F32")
    unknown = [q for q in quants if q not in QUANT_TYPES]
    if unknown:
        raise UserError(f"unknown quant type {unknown[0]!r}; choose from {', '.join(QUANT_TYPES)}")
    folder = model_folder(path)
    out_dir = Path(out_dir) if out_dir else default_out_dir(path)
    stem = "student" if folder.name == "student" else folder.name
    from slm_studio.models.loading import load_model, load_tokenizer

    on_event(Event("export", step=0, total=2 + len(quants), message=f"loading {folder}"))
    model, tokenizer = load_model(folder).eval(), load_tokenizer(folder)
    target = out_dir / f"{stem}-{float_type}.gguf"
    with atomic_path(target) as tmp:  # the proof runs on the temporary file; only a proven file gets the name
        on_event(Event("export", step=0, total=2 + len(quants), message=f"writing {float_type} GGUF"))
        write_gguf(model, tokenizer, folder, tmp, float_type)
        _check_cancel(cancel)
        on_event(Event("export", step=1, total=2 + len(quants), message="proving it in llama.cpp"))
        proof = prove(tmp, model, tokenizer)
        if proof.agreement < MIN_AGREEMENT[float_type] or not proof.tokenizer_match:
            raise UserError(f"the GGUF export failed its proof: llama.cpp agrees with torch on "
                            f"{proof.agreement:.1%} of next tokens (needs {MIN_AGREEMENT[float_type]:.0%}), "
                            f"tokenizer {'matches' if proof.tokenizer_match else 'differs'}")
    result = ExportResult(float_path=target, proof=proof, files={float_type: target})
    for i, quant in enumerate(quants, start=2):
        _check_cancel(cancel)
        on_event(Event("export", step=i, total=2 + len(quants), message=f"quantizing to {quant}"))
        result.files[quant] = quantize(target, out_dir / f"{stem}-{quant}.gguf", quant)
    on_event(Event("export", step=2 + len(quants), total=2 + len(quants), message="done"))
    return result


def _check_cancel(cancel: CancelToken | None) -> None:
    if cancel is not None and cancel.cancelled:
        raise Cancelled("export cancelled; no partial file is left")
