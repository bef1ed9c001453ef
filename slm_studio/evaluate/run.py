"""The evaluation stage: what a finished run transferred, and what each GGUF size costs in quality and speed.

    slm-studio eval runs/quick --quants Q8_0 Q5_K_M Q4_K_M
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import torch

from slm_studio.errors import Cancelled, UserError
from slm_studio.evaluate import gguf_files, heldout
from slm_studio.evaluate.agreement import agreement, target_hidden_states
from slm_studio.evaluate.pareto import pareto_front
from slm_studio.evaluate.perplexity import gguf_perplexity
from slm_studio.evaluate.report import markdown
from slm_studio.evaluate.result import EvalResult, QuantPoint
from slm_studio.evaluate.speed import decode_tokens_per_s
from slm_studio.events import CancelToken, Event, EventHandler, ignore_event
from slm_studio.export.quantize import QUANT_TYPES
from slm_studio.fileio import write_json, write_text
from slm_studio.models import loading
from slm_studio.models.student import parameter_count
from slm_studio.prune import read_summary

DEFAULT_QUANTS = ("Q8_0", "Q5_K_M", "Q4_K_M")
SPEED_TOKENS = 64  # greedy tokens generated per file for the generation speed
PLOT_NAME = "pareto.png"
PlotWriter = Callable[[EvalResult, Path], None]  # draws the Pareto plot as a PNG (the app package supplies it)


def evaluate_run(run_dir: Path, quants: list[str] = DEFAULT_QUANTS, threads: int | None = None,
                 plot_writer: PlotWriter | None = None, on_event: EventHandler = ignore_event,
                 cancel: CancelToken | None = None, speed_tokens: int = SPEED_TOKENS) -> EvalResult:
    """Measure a finished run and write RUN_DIR/eval.json, RUN_DIR/report.md and (with a plot writer)
    RUN_DIR/pareto.png."""
    started = time.perf_counter()
    run_dir, cancel = Path(run_dir), cancel or CancelToken()
    quants = _check_quants(quants)
    config = heldout.check_run_dir(run_dir)
    progress = _Progress(on_event, cancel, total=5 + 2 * (1 + len(quants)))
    progress("loading the teacher, the distilled student and the held-out text")
    teacher_folder = heldout.teacher_folder(config)
    with _torch_threads(threads):
        teacher, student = loading.load_model(teacher_folder).eval(), loading.load_model(run_dir / "student").eval()
        held = heldout.held_out(config, run_dir, loading.load_tokenizer(run_dir / "student"))
        result = _torch_measures(config, run_dir, teacher, student, held, progress)
    del teacher, student  # llama.cpp needs the memory next
    result.threads = threads = threads or os.cpu_count() or 1
    files = {}
    progress("exporting and quantizing the student and the teacher (existing files are reused)")
    files["student"] = gguf_files.student_ggufs(run_dir, quants, on_event)
    files["teacher"] = gguf_files.teacher_ggufs(teacher_folder, quants, on_event)
    for model in ("teacher", "student"):
        for quant, path in files[model].items():
            progress(f"llama.cpp: perplexity and speed of the {model} at {quant}")
            result.points.append(_measure_gguf(model, quant, path, held, threads, speed_tokens))
    result.front = [p.label for p in pareto_front(result.points)]
    result.seconds = time.perf_counter() - started
    progress("writing eval.json, report.md and the Pareto plot")
    write_report(result, run_dir, plot_writer)
    progress.done("evaluation written to " + str(run_dir / "report.md"))
    return result


def write_report(result: EvalResult, run_dir: Path, plot_writer: PlotWriter | None) -> None:
    write_json(run_dir / "eval.json", result.to_dict())
    if plot_writer is not None:
        plot_writer(result, run_dir / PLOT_NAME)
    write_text(run_dir / "report.md", markdown(result, PLOT_NAME if plot_writer else None))


def _torch_measures(config, run_dir: Path, teacher, student, held, progress) -> EvalResult:
    batch = config.batch_size
    progress("held-out perplexity, top-1 agreement and KL of the teacher and the distilled student (torch)")
    teacher_hidden = target_hidden_states(teacher, held, batch)  # reused for the untrained student
    distilled = agreement(teacher, student, held, batch, teacher_hidden)
    progress("the untrained student")
    untrained, source = heldout.untrained_student(config, run_dir, teacher)
    before = agreement(teacher, untrained, held, batch, teacher_hidden) if untrained is not None else None
    return EvalResult(
        run_dir=str(run_dir), held_out_sequences=len(held), held_out_tokens=held.target_tokens,
        teacher_ppl=distilled.teacher_ppl, student_ppl=distilled.student_ppl,
        untrained_ppl=before.student_ppl if before else heldout.baseline_untrained_ppl(run_dir),
        untrained_source=source, top1_agreement=distilled.top1, mean_kl=distilled.mean_kl,
        untrained_top1_agreement=before.top1 if before else None, untrained_mean_kl=before.mean_kl if before else None,
        teacher_parameters=parameter_count(teacher), student_parameters=parameter_count(student),
        student_safetensors_bytes=sum(f.stat().st_size for f in (run_dir / "student").glob("*.safetensors")),
        pruning=read_summary(run_dir))


def _measure_gguf(model: str, quant: str, path: Path, held, threads: int, speed_tokens: int) -> QuantPoint:
    speed = decode_tokens_per_s(path, speed_tokens, threads)
    return QuantPoint(model=model, quant=quant, path=str(path), size_bytes=path.stat().st_size,
                      perplexity=gguf_perplexity(path, held, threads), prompt_tps=speed.prompt_tps,
                      generation_tps=speed.generation_tps)


@contextmanager
def _torch_threads(threads: int | None):
    """Torch's thread count for the duration (restored after): an explicit `threads` applies to torch too."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_quants(quants) -> list[str]:
    quants = [q for q in dict.fromkeys(quants) if q != gguf_files.FLOAT]
    unknown = [q for q in quants if q not in QUANT_TYPES]
    if unknown:
        raise UserError(f"unknown quant type {unknown[0]!r}; choose from {', '.join(QUANT_TYPES)}")
    return quants


class _Progress:
    """Numbered 'evaluate' events, one per sub-step, with a cancel check before each."""

    def __init__(self, on_event: EventHandler, cancel: CancelToken, total: int) -> None:
        self.on_event, self.cancel, self.total, self.step = on_event, cancel, total, 0

    def __call__(self, message: str) -> None:
        if self.cancel.cancelled:
            raise Cancelled("evaluation cancelled; the run's earlier report files are kept")
        self.on_event(Event("evaluate", step=self.step, total=self.total, message=message))
        self.step += 1

    def done(self, message: str) -> None:
        self.on_event(Event("evaluate", step=self.total, total=self.total, message=message))
