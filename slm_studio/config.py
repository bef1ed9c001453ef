"""Every setting of a distillation run: one flat dataclass, saved as `run.toml` next to the run's outputs."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

import tomli_w

from slm_studio.errors import UserError

LOSSES = ("forward_kl", "reverse_kl", "jsd")
PRUNE_METHODS = ("none", "unstructured", "structured")
PRUNE_SCORES = ("magnitude", "activation")
PRUNE_SCOPES = ("layer", "global")
DEFAULT_TEACHER = "SmolLM2-135M-Instruct"


def runs_root() -> Path:
    """Where new run directories go: $SLM_STUDIO_RUNS, else ./runs."""
    return Path(os.environ.get("SLM_STUDIO_RUNS", "runs"))


def run_dirs(marker: str = "run.toml") -> list[Path]:
    """Run directories under runs_root() that hold `marker` (a file or folder path), newest name first."""
    root = runs_root()
    return sorted((p for p in root.iterdir() if (p / marker).exists()), reverse=True) if root.is_dir() else []


def _opt(default, help: str, **kw):
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class DistillConfig:
    # models
    teacher: str = _opt(DEFAULT_TEACHER, "bundled teacher name, local HF folder or local .gguf file")
    student_layers: int = _opt(15, "keep this many evenly spaced teacher layers (first and last included)")
    student_layer_list: list = _opt([], "explicit teacher layer indices to keep (overrides student_layers)")
    student_mlp_ratio: float = _opt(1.0, "fraction of MLP channels to keep (1.0 = teacher width)")
    student_model: str = _opt("", "a local HF causal LM folder to use as student instead of deriving one")
    # pruning (of the student, before distillation)
    prune: str = _opt("none", "prune the student before distilling: none, unstructured (zero single weights; the "
                              "model keeps its size) or structured (remove heads, MLP channels, layers: smaller)")
    sparsity: float = _opt(0.5, "share to prune: of the decoder layers' weights (unstructured), or of the KV head "
                                "groups and MLP channels of every layer (structured)")
    prune_score: str = _opt("activation", "importance: magnitude (|weight|) or activation (|weight| x input "
                                          "activation norm on calibration batches)")
    prune_scope: str = _opt("layer", "unstructured: the same share in every weight matrix (layer) or one ranking "
                                     "over all of them (global)")
    prune_layers: int = _opt(0, "structured: also remove this many whole layers (those that change the hidden "
                                "state least)")
    calibration_batches: int = _opt(4, "training batches run through the student to measure importance")
    # data
    data: list = _opt(["python-docs"], "corpora: 'python-docs' (bundled) or .txt/.jsonl paths")
    teacher_prompts: str = _opt("", "prompts the teacher answers for training data: '', 'default' or a file")
    generate_max_tokens: int = _opt(96, "longest teacher answer, in tokens")
    generate_temperature: float = _opt(0.0, "sampling temperature of teacher answers (0 = greedy)")
    generate_batch_size: int = _opt(8, "prompts answered at once")
    holdout_fraction: float = _opt(0.05, "share of examples held out for evaluation")
    # losses
    temperature: float = _opt(2.0, "distillation temperature T (soft loss is scaled by T^2)")
    alpha: float = _opt(0.5, "weight of the soft-target loss; 1 - alpha weighs the hard labels")
    loss: str = _opt("forward_kl", "soft loss: forward_kl, reverse_kl or jsd")
    jsd_beta: float = _opt(0.5, "mixture weight of the generalized JSD (0 -> forward KL, 1 -> reverse KL)")
    attention_weight: float = _opt(0.0, "weight of attention transfer: KL between the head-averaged attention maps "
                                        "of each student layer and its teacher layer (0 = off)")
    hidden_weight: float = _opt(0.0, "weight of the hidden-state loss: 1 - cosine between the outputs of each "
                                     "student layer and its teacher layer (0 = off)")
    teacher_topk: int = _opt(0, "cache the teacher's top-k log-probabilities once and reuse them (0 = run the "
                                "teacher every step)")
    teacher_tail_samples: int = _opt(256, "with teacher_topk: tokens drawn once per position from the rest of the "
                                         "teacher's distribution, so the forward KL also sees the mass outside the "
                                         "top k (reverse KL and JSD count that mass as one bucket); 0 = one bucket")
    freeze_embeddings: bool = _opt(False, "keep the student's token embedding and output head at the teacher's "
                                          "values (no gradients or optimizer state for the vocabulary matrices)")
    optimizer_state: str = _opt("bf16", "AdamW moments in bf16 (half the optimizer's memory; the second moment "
                                        "rounded stochastically) or fp32")
    activation_checkpointing: bool = _opt(True, "keep only each layer's input in the forward pass and recompute the "
                                                "rest in the backward pass: less memory, a little more time (off "
                                                "while attention or hidden losses are on)")
    precision: str = _opt("auto", "bf16 autocast for the models (losses stay fp32), fp32, or auto: bf16 where the "
                                  "hardware computes it natively")
    # optimisation
    steps: int = _opt(100, "optimizer steps")
    lr: float = _opt(3e-4, "peak learning rate (AdamW)")
    warmup_steps: int = _opt(10, "linear warm-up steps before the cosine decay")
    min_lr_ratio: float = _opt(0.1, "final learning rate as a share of the peak")
    weight_decay: float = _opt(0.01, "AdamW weight decay")
    max_grad_norm: float = _opt(1.0, "gradient clipping norm (0 = off)")
    batch_size: int = _opt(4, "sequences per micro-batch")
    grad_accum: int = _opt(1, "micro-batches per optimizer step")
    seq_len: int = _opt(128, "tokens per sequence")
    seed: int = _opt(0, "seed for initialisation, data order and sampling")
    device: str = _opt("auto", "auto (CUDA when present, else CPU), cpu or cuda")
    threads: int = _opt(0, "CPU threads for torch (0 = torch's default)")
    # bookkeeping
    eval_every: int = _opt(50, "steps between held-out evaluations")
    eval_batches: int = _opt(8, "held-out batches per evaluation")
    checkpoint_every: int = _opt(50, "steps between checkpoints")

    def problems(self) -> dict[str, str]:
        """Field name -> what is wrong with it; empty when the config can run."""
        p: dict[str, str] = {}
        if self.temperature <= 0:
            p["temperature"] = f"temperature must be > 0, got {self.temperature}"
        if not 0 <= self.alpha <= 1:
            p["alpha"] = f"alpha must lie in [0, 1], got {self.alpha}"
        if self.loss not in LOSSES:
            p["loss"] = f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}"
        if not 0 < self.jsd_beta < 1:
            p["jsd_beta"] = f"jsd_beta must lie strictly between 0 and 1, got {self.jsd_beta}"
        for name in ("steps", "batch_size", "grad_accum", "eval_every", "eval_batches", "checkpoint_every",
                     "generate_max_tokens", "generate_batch_size"):
            if getattr(self, name) < 1:
                p[name] = f"{name} must be >= 1, got {getattr(self, name)}"
        if self.seq_len < 8:
            p["seq_len"] = f"seq_len must be >= 8, got {self.seq_len}"
        if self.lr <= 0:
            p["lr"] = f"lr must be > 0, got {self.lr}"
        if self.warmup_steps < 0:
            p["warmup_steps"] = f"warmup_steps must be >= 0, got {self.warmup_steps}"
        if not 0 <= self.min_lr_ratio <= 1:
            p["min_lr_ratio"] = f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}"
        if not 0 < self.holdout_fraction < 0.5:
            p["holdout_fraction"] = f"holdout_fraction must lie in (0, 0.5), got {self.holdout_fraction}"
        if not 0 < self.student_mlp_ratio <= 1:
            p["student_mlp_ratio"] = f"student_mlp_ratio must lie in (0, 1], got {self.student_mlp_ratio}"
        if self.student_layers < 1 and not self.student_layer_list:
            p["student_layers"] = f"student_layers must be >= 1, got {self.student_layers}"
        for name in ("attention_weight", "hidden_weight"):
            if getattr(self, name) < 0:
                p[name] = f"{name} must be >= 0, got {getattr(self, name)}"
            elif getattr(self, name) > 0 and self.teacher_topk:
                p[name] = (f"{name} needs the live teacher's internals, but teacher_topk={self.teacher_topk} "
                           f"replaces the teacher by its cached outputs; set teacher_topk to 0")
        p.update(self._pruning_problems())
        if self.teacher_topk < 0:
            p["teacher_topk"] = f"teacher_topk must be >= 0, got {self.teacher_topk}"
        if self.teacher_tail_samples < 0:
            p["teacher_tail_samples"] = f"teacher_tail_samples must be >= 0, got {self.teacher_tail_samples}"
        if self.optimizer_state not in ("fp32", "bf16"):
            p["optimizer_state"] = f"optimizer_state must be fp32 or bf16, got {self.optimizer_state!r}"
        if self.precision not in ("auto", "fp32", "bf16"):
            p["precision"] = f"precision must be auto, fp32 or bf16, got {self.precision!r}"
        if self.device not in ("auto", "cpu", "cuda"):
            p["device"] = f"device must be auto, cpu or cuda, got {self.device!r}"
        if not self.data and not self.teacher_prompts:
            p["data"] = "no training data: give a corpus or teacher prompts"
        return p

    def _pruning_problems(self) -> dict[str, str]:
        p: dict[str, str] = {}
        choices = {"prune": PRUNE_METHODS, "prune_score": PRUNE_SCORES, "prune_scope": PRUNE_SCOPES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                p[name] = f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
        if not 0 <= self.sparsity < 1:
            p["sparsity"] = f"sparsity must lie in [0, 1), got {self.sparsity}"
        if self.calibration_batches < 1:
            p["calibration_batches"] = f"calibration_batches must be >= 1, got {self.calibration_batches}"
        layers = len(self.student_layer_list) or self.student_layers
        if self.prune_layers < 0:
            p["prune_layers"] = f"prune_layers must be >= 0, got {self.prune_layers}"
        elif self.prune_layers and self.prune != "structured":
            p["prune_layers"] = "prune_layers removes whole layers, which needs prune = structured"
        elif self.prune_layers and not self.student_model and self.prune_layers >= layers:
            p["prune_layers"] = f"prune_layers {self.prune_layers} would remove all {layers} student layers"
        return p

    def validate(self) -> "DistillConfig":
        problems = self.problems()
        if problems:
            raise UserError("; ".join(problems.values()))
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "DistillConfig":
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise UserError(f"{source}: unknown setting(s) {', '.join(unknown)}")
        values = {}
        for name, value in data.items():
            values[name] = _coerce(name, value, type(getattr(cls(), name)), source)
        return cls(**values)

    def save(self, path: Path) -> None:
        from slm_studio.fileio import write_text

        write_text(Path(path), tomli_w.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: Path) -> "DistillConfig":
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"config file not found: {path}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{path} is not valid TOML: {exc}") from None
        return cls.from_dict(data, source=str(path))


LIST_ITEM_TYPES = {"student_layer_list": int, "data": str}


def _coerce(name: str, value, expected: type, source: str):
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is list and isinstance(value, list):
        item = LIST_ITEM_TYPES.get(name)
        if item and not all(type(v) is item for v in value):
            raise UserError(f"{source}: {name} must be a list of {item.__name__}, got {value!r}")
        return value
    if type(value) is not expected:
        raise UserError(f"{source}: {name} must be {expected.__name__}, got {type(value).__name__} {value!r}")
    return value


def help_text(name: str) -> str:
    return next(f.metadata["help"] for f in fields(DistillConfig) if f.name == name)


PRESETS: dict[str, dict] = {
    # The headless main job: about 4.5 minutes on 2 CPU cores, teacher load and teacher answers included.
    "quick": dict(steps=100, batch_size=4, seq_len=128, lr=3e-4, warmup_steps=10, eval_every=50, eval_batches=8,
                  checkpoint_every=50, teacher_prompts="default"),
    # A stronger run: six times the tokens, about 18 minutes on 2 cores (measured 17:41).
    "standard": dict(steps=300, batch_size=8, seq_len=128, lr=3e-4, warmup_steps=20, eval_every=100,
                     eval_batches=16, checkpoint_every=100, teacher_prompts="default"),
}


def preset(name: str) -> DistillConfig:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return DistillConfig(**PRESETS[name])
