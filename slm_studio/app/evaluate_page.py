"""Evaluate page: a finished run's perplexity, agreement and KL with its teacher, and the compression-quality
trade-off of its GGUF files, as tables and a live Pareto plot (the same data as RUN_DIR/pareto.png)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from slm_studio.app.pareto_png import save_pareto_png
from slm_studio.app.run_picker import QuantChoice, RunPicker
from slm_studio.app.worker import start_worker
from slm_studio.errors import UserError
from slm_studio.evaluate import report
from slm_studio.evaluate.report import format_ppl
from slm_studio.evaluate.result import EvalResult
from slm_studio.evaluate.run import DEFAULT_QUANTS, evaluate_run
from slm_studio.events import Event

COLORS = {"teacher": "#e4572e", "student": "#2f6fde"}


class ParetoPlot(pg.PlotWidget):
    """Held-out perplexity (log axis) against GGUF size, one point per file, the Pareto front dashed."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent=parent)
        self.setTitle("Compression vs quality (llama.cpp, held-out text)", size="10pt")
        self.setLabel("bottom", "GGUF file size (MB)")
        self.setLabel("left", "held-out perplexity")
        self.setLogMode(y=True)
        self.showGrid(x=True, y=True, alpha=0.25)
        self.addLegend(offset=(-10, 10))
        self.setMinimumHeight(260)
        self.labels: list[pg.TextItem] = []

    def show_result(self, result: EvalResult) -> None:
        self.clear()
        self.plotItem.legend.clear()
        self.labels = []
        for model, color in COLORS.items():
            points = [p for p in result.points if p.model == model]
            self.plot([p.size_mb for p in points], [p.perplexity for p in points], pen=None, symbol="o",
                      symbolSize=11, symbolBrush=color, symbolPen="#222222", name=model)
        front = [p for label in result.front for p in result.points if p.label == label]
        self.plot([p.size_mb for p in front], [p.perplexity for p in front], name="Pareto front",
                  pen=pg.mkPen("#17a34a", width=2, style=pg.QtCore.Qt.DashLine))
        for p in result.points:
            label = pg.TextItem(f"{p.label}  {format_ppl(p.perplexity)}", color="#222222", anchor=(0, 1))
            label.setPos(p.size_mb, math.log10(p.perplexity))  # items on a log axis take log10 coordinates
            self.addItem(label)
            self.labels.append(label)
        self.setXRange(0, max(p.size_mb for p in result.points) * 1.3)


class EvaluatePage(QWidget):
    evaluated = Signal(object)  # EvalResult
    failed = Signal(str, str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.thread = self.worker = None
        self.picker = RunPicker("Run", "Pick a finished run directory")
        self.run = self.picker.combo
        self.run.currentTextChanged.connect(self._on_run_text_changed)
        self.quant_choice = QuantChoice("Quant levels besides F16, for the student and the teacher",
                                        tuple(DEFAULT_QUANTS))
        self.quants = self.quant_choice.boxes
        self.threads = QSpinBox()
        self.threads.setRange(1, os.cpu_count() or 1)
        self.threads.setValue(os.cpu_count() or 1)
        self.threads.setPrefix("llama.cpp threads: ")
        self.threads.setToolTip("Fewer threads can be faster while other programs keep every core busy")
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setObjectName("primary")
        self.evaluate_button.clicked.connect(self._on_evaluate_clicked)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.status = QLabel("Pick a finished run. Evaluation exports and quantizes what is missing, then measures "
                             "every file in llama.cpp (about two minutes for the quick preset).")
        self.status.setWordWrap(True)
        self.quality = _table(["Measure", "Value"])
        self.trade_off = _table(report.QUANT_COLUMNS)
        self.plot = ParetoPlot()
        self._lay_out()
        self._on_run_text_changed(self.run.currentText())

    def _lay_out(self) -> None:
        self.quant_choice.row.addWidget(self.threads)
        row = QHBoxLayout()
        row.addWidget(self.evaluate_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.progress, 1)
        tables = QVBoxLayout()
        tables.addWidget(self.quality, 1)
        tables.addWidget(self.trade_off, 1)
        results = QHBoxLayout()
        results.addLayout(tables, 1)
        results.addWidget(self.plot, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.picker)
        layout.addWidget(self.quant_choice)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addLayout(results, 1)

    def refresh(self) -> None:
        self.picker.refresh()

    def start(self, path: Path, quants: list[str]) -> None:
        threads = self.threads.value()
        self.thread, self.worker = start_worker(self, lambda on_event, cancel: evaluate_run(
            path, quants, threads, plot_writer=save_pareto_png, on_event=on_event, cancel=cancel))
        self.worker.event.connect(self._on_worker_event)
        self.worker.finished.connect(self._on_worker_finished)
        self.worker.failed.connect(self._on_worker_failed)
        self.worker.cancelled.connect(self._on_worker_cancelled)
        self.thread.finished.connect(self._on_thread_finished)
        self.evaluate_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.thread.start()

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel_token.cancel()
            self.status.setText("Cancelling after the current measurement...")

    def show_result(self, result: EvalResult) -> None:
        _fill(self.quality, [list(row) for row in report.quality_rows(result)])
        self.trade_off.setColumnCount(len(report.quant_header(result)))
        self.trade_off.setHorizontalHeaderLabels(report.quant_header(result))
        _fill(self.trade_off, report.quant_rows(result))
        self.plot.show_result(result)

    def _on_run_text_changed(self, text: str) -> None:
        """A run evaluated before shows its numbers at once (from its eval.json)."""
        path = Path(text.strip()) / "eval.json" if text.strip() else None
        if path is not None and path.is_file() and self.thread is None:
            try:
                self.show_result(EvalResult.load(path))
                self.status.setText(f"Evaluated before: {path.parent / 'report.md'}")
            except UserError as exc:
                self.status.setText(str(exc))

    def _on_evaluate_clicked(self) -> None:
        if self.run.currentText().strip():
            self.start(Path(self.run.currentText().strip()), self.quant_choice.chosen())

    def _on_worker_event(self, event: Event) -> None:
        self.progress.setRange(0, event.total or 0)
        self.progress.setValue(event.step)
        if event.message:
            self.status.setText(event.message)

    def _on_worker_finished(self, result: EvalResult) -> None:
        self.show_result(result)
        self.status.setText(f"Report written to {Path(result.run_dir) / 'report.md'} ({result.seconds:.0f} s)")
        self.evaluated.emit(result)

    def _on_worker_failed(self, message: str, details: str) -> None:
        self.status.setText(f"Failed: {message}")
        self.failed.emit(message, details)

    def _on_worker_cancelled(self) -> None:
        self.status.setText("Cancelled; the run's earlier report files are kept.")

    def _on_thread_finished(self) -> None:
        self.thread = self.worker = None
        self.evaluate_button.setEnabled(True)
        self.cancel_button.setEnabled(False)


def _table(header: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(header))
    table.setHorizontalHeaderLabels(header)
    table.horizontalHeader().setStretchLastSection(True)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.NoEditTriggers)
    return table


def _fill(table: QTableWidget, rows: list[list[str]]) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.setItem(r, c, QTableWidgetItem(text))
    table.resizeColumnsToContents()
