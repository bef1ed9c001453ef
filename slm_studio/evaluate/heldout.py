"""A finished run's held-out text, rebuilt exactly as the trainer split it, and the models it compares."""

from __future__ import annotations

import json
from pathlib import Path

from slm_studio.config import DistillConfig
from slm_studio.data.corpus import TokenizedData, load_records, split_holdout, tokenize
from slm_studio.errors import UserError
from slm_studio.models import loading, sources
from slm_studio.models.student import StudentPlan, derive_student, plan_layers

MAX_EVAL_TOKENS = 4096  # llama.cpp evaluates every GGUF on these tokens: a few seconds each


def check_run_dir(run_dir: Path) -> DistillConfig:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory not found: {run_dir}")
    if not (run_dir / "run.toml").exists():
        raise UserError(f"{run_dir} is not a run directory (it has no run.toml)")
    if not (run_dir / "student" / "config.json").exists():
        raise UserError(f"{run_dir} holds no finished student yet (student/ is missing); finish or resume the run")
    return DistillConfig.load(run_dir / "run.toml")


def held_out(config: DistillConfig, run_dir: Path, tokenizer) -> TokenizedData:
    """The trainer's held-out split (same records, tokenizer, seq_len and seed), cut to the sequences its
    evaluation used and to at most MAX_EVAL_TOKENS tokens."""
    records = [r for spec in config.data for r in load_records(spec)]
    records += teacher_answer_records(config, run_dir)
    _, held = split_holdout(tokenize(records, tokenizer, config.seq_len), config.holdout_fraction, config.seed)
    n = min(len(held), config.batch_size * config.eval_batches, max(1, MAX_EVAL_TOKENS // config.seq_len))
    return held.subset(list(range(n)))


def teacher_answer_records(config: DistillConfig, run_dir: Path) -> list[dict]:
    if not config.teacher_prompts:
        return []
    path = Path(run_dir) / "teacher_answers.jsonl"
    if not path.exists():
        raise UserError(f"{path} is missing: the run's held-out split cannot be rebuilt without it")
    answers = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"messages": [{"role": "user", "content": a["prompt"]}, {"role": "assistant", "content": a["response"]}]}
            for a in answers]


def teacher_folder(config: DistillConfig) -> Path:
    return loading.hf_folder(sources.resolve(config.teacher))


def untrained_student(config: DistillConfig, run_dir: Path, teacher):
    """(model or None, how it was obtained): the student as it stood before training, when it can be rebuilt."""
    if (Path(run_dir) / "pruning.json").exists():
        return None, "baseline.json (the run was pruned before training; not re-derived)"
    if config.student_model:
        return loading.load(sources.resolve(config.student_model))[0], "reloaded from student_model"
    layers = plan_layers(teacher.config.num_hidden_layers, config.student_layers, list(config.student_layer_list))
    return derive_student(teacher, StudentPlan(layers, config.student_mlp_ratio)), "re-derived from the teacher"


def baseline_untrained_ppl(run_dir: Path) -> float | None:
    path = Path(run_dir) / "baseline.json"
    return json.loads(path.read_text())["untrained_ppl"] if path.exists() else None
