"""What an evaluation found, as plain data: written to RUN_DIR/eval.json and read back by the app."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from slm_studio.errors import UserError


@dataclass
class QuantPoint:
    """One GGUF file of the teacher or the student: its size, llama.cpp perplexity and speed."""

    model: str  # "teacher" or "student"
    quant: str  # "F16", "Q8_0", ...
    path: str
    size_bytes: int
    perplexity: float
    prompt_tps: float
    generation_tps: float

    @property
    def label(self) -> str:
        return f"{self.model} {self.quant}"

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6


@dataclass
class EvalResult:
    run_dir: str
    held_out_sequences: int
    held_out_tokens: int  # target tokens every perplexity, agreement and KL here is measured on
    teacher_ppl: float
    untrained_ppl: float | None
    untrained_source: str  # how the untrained student's number was obtained
    student_ppl: float
    top1_agreement: float
    mean_kl: float
    untrained_top1_agreement: float | None
    untrained_mean_kl: float | None
    teacher_parameters: int
    student_parameters: int
    student_safetensors_bytes: int
    pruning: dict | None  # RUN_DIR/pruning.json when the run was pruned
    points: list[QuantPoint] = field(default_factory=list)
    front: list[str] = field(default_factory=list)  # labels of the Pareto-optimal points, smallest first
    threads: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EvalResult:
        data = dict(data)
        data["points"] = [QuantPoint(**p) for p in data.get("points", [])]
        return cls(**data)

    @classmethod
    def load(cls, path: Path) -> EvalResult:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise UserError(f"cannot read the evaluation {path} ({exc})") from None

    def point(self, model: str, quant: str) -> QuantPoint | None:
        return next((p for p in self.points if p.model == model and p.quant == quant), None)
