"""Distill page: the settings form, Start / Cancel / Resume, live plots, progress with ETA."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QPushButton, QScrollArea,
                               QSplitter, QVBoxLayout, QWidget)

from slm_studio.app.distill_form import DistillForm
from slm_studio.app.plots import MetricPlot
from slm_studio.app.worker import start_worker
from slm_studio.config import DistillConfig, runs_root
from slm_studio.distill.trainer import DistillResult, distill
from slm_studio.events import Event
from slm_studio.progress import format_seconds

LOSS_SERIES = ("loss", "kl", "ce")  # plotted on the loss chart; any other loss the engine reports joins them
NOT_LOSSES = {"lr", "tokens_per_s", "eta_s", "grad_norm", "eval_ppl"}


class DistillPage(QWidget):
    run_finished = Signal(object)  # DistillResult
    failed = Signal(str, str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.form = DistillForm()
        self.form.changed.connect(self._on_form_changed)
        self.thread = None
        self.worker = None
        self.run_dir: Path | None = None
        self._build()
        self._on_form_changed()

    def _build(self) -> None:
        scroll = QScrollArea()
        scroll.setWidget(self.form)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(430)

        self.start_button = QPushButton("Start distillation")
        self.start_button.setObjectName("primary")
        self.cancel_button = QPushButton("Cancel")
        self.resume_button = QPushButton("Resume")
        self.start_button.clicked.connect(self._on_start_clicked)
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button.clicked.connect(self._on_resume_clicked)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m steps")
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        self.loss_plot = MetricPlot("Loss (total, KL, CE)", "loss")
        self.eval_plot = MetricPlot("Held-out perplexity", "perplexity", log_y=True)
        self.lr_plot = MetricPlot("Learning rate", "lr")
        self.speed_plot = MetricPlot("Throughput", "tokens/s")
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumHeight(90)

        buttons = QHBoxLayout()
        for b in (self.start_button, self.cancel_button, self.resume_button):
            buttons.addWidget(b)
        buttons.addWidget(self.progress, 1)
        right = QWidget()
        r = QVBoxLayout(right)
        r.addLayout(buttons)
        r.addWidget(self.status)
        top = QHBoxLayout()
        top.addWidget(self.loss_plot, 3)
        top.addWidget(self.eval_plot, 2)
        bottom = QHBoxLayout()
        bottom.addWidget(self.lr_plot)
        bottom.addWidget(self.speed_plot)
        r.addLayout(top, 3)
        r.addLayout(bottom, 2)
        r.addWidget(self.log)
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(scroll)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        layout = QHBoxLayout(self)
        layout.addWidget(splitter)

    # ---- running
    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, config: DistillConfig, run_dir: Path | None = None, resume: bool = False) -> None:
        self.run_dir = run_dir or runs_root() / datetime.now().strftime("%Y%m%d-%H%M%S")
        for plot in (self.loss_plot, self.eval_plot, self.lr_plot, self.speed_plot):
            plot.clear_series()
        if resume:
            self._replay_metrics(self.run_dir)
        self.progress.setRange(0, config.steps)
        self.log.appendPlainText(f"{'Resuming' if resume else 'Starting'} {self.run_dir}")
        run_dir = self.run_dir
        self.thread, self.worker = start_worker(self, lambda on_event, cancel: distill(
            config, run_dir, resume=resume, on_event=on_event, cancel=cancel))
        self.worker.event.connect(self._on_worker_event)
        self.worker.finished.connect(self._on_worker_finished)
        self.worker.failed.connect(self._on_worker_failed)
        self.worker.cancelled.connect(self._on_worker_done)
        self.thread.finished.connect(self._on_thread_finished)
        self.thread.start()
        self._update_buttons()

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel_token.cancel()
            self.status.setText("Stopping after this step; a checkpoint is kept...")

    def wait(self, ms: int = 60_000) -> None:
        """Block until the worker thread ends (used when the window closes)."""
        if self.thread is not None:
            self.thread.wait(ms)

    def _replay_metrics(self, run_dir: Path) -> None:
        from slm_studio.fileio import read_jsonl

        path = run_dir / "metrics.jsonl"
        if path.exists():
            for row in read_jsonl(path):
                self._plot(row["step"], row)

    # ---- slots
    def _on_start_clicked(self) -> None:
        self.start(self.form.config())

    def _on_resume_clicked(self) -> None:
        if self.run_dir is not None:
            self.start(DistillConfig.load(self.run_dir / "run.toml"), self.run_dir, resume=True)

    def _on_worker_event(self, event: Event) -> None:
        if event.message:
            self.log.appendPlainText(f"[{event.stage}] {event.message}")
            self.status.setText(event.message)
        if event.stage in ("generate", "cache") and event.total:
            self.progress.setRange(0, event.total)
            self.progress.setFormat("%v / %m prompts answered" if event.stage == "generate" else
                                    "%v / %m sequences: caching the teacher's outputs")
            self.progress.setValue(event.step)
        if event.stage == "eval" and "teacher_ppl" in event.metrics:
            # the teacher's perplexity: a flat reference line the student's curve approaches
            self.eval_plot.add_point("teacher", 0, event.metrics["teacher_ppl"])
            self.eval_plot.add_point("teacher", event.total, event.metrics["teacher_ppl"])
        if event.stage == "train" and event.metrics:
            self.progress.setRange(0, event.total)
            self.progress.setFormat("%v / %m steps")
            self.progress.setValue(event.step)
            m = event.metrics
            self.status.setText(f"step {event.step}/{event.total}  loss {m['loss']:.3f}  kl {m['kl']:.3f}  "
                                f"ce {m['ce']:.3f}  {m['tokens_per_s']:.0f} tokens/s  "
                                f"ETA {format_seconds(m['eta_s'])}")
            self._plot(event.step, m)

    def _plot(self, step: int, metrics: dict) -> None:
        for key, value in metrics.items():
            if key not in NOT_LOSSES:
                self.loss_plot.add_point(key, step, value)
        if "eval_ppl" in metrics:
            self.eval_plot.add_point("student", step, metrics["eval_ppl"])
        self.lr_plot.add_point("lr", step, metrics["lr"])
        self.speed_plot.add_point("tokens/s", step, metrics["tokens_per_s"])

    def _on_worker_finished(self, result: DistillResult) -> None:
        if result.status == "cancelled":
            self._on_worker_done()
            return
        self.status.setText(f"Finished in {format_seconds(result.seconds)}. Held-out perplexity: teacher "
                            f"{result.teacher_ppl:.1f}, untrained student {result.untrained_ppl:.1f}, "
                            f"distilled student {result.student_ppl:.1f}")
        self.log.appendPlainText(self.status.text())
        self.run_finished.emit(result)

    def _on_worker_failed(self, message: str, details: str) -> None:
        self.status.setText(f"Failed: {message}")
        self.failed.emit(message, details)

    def _on_worker_done(self) -> None:
        self.status.setText("Cancelled; a checkpoint is kept. Press Resume to continue.")

    def _on_thread_finished(self) -> None:
        self.thread = self.worker = None
        self._update_buttons()

    def _on_form_changed(self) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        from slm_studio.distill.checkpoint import latest_checkpoint

        self.start_button.setEnabled(not self.running and not self.form.problems())
        self.cancel_button.setEnabled(self.running)
        can_resume = (self.run_dir is not None and not (self.run_dir / "student").exists()
                      and latest_checkpoint(self.run_dir) is not None)
        self.resume_button.setEnabled(not self.running and can_resume)
        self.form.setEnabled(not self.running)
