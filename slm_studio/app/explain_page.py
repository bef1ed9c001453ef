"""Explain page: the teacher's soft labels at T = 1, 2 and 4 beside the hard label and the student's distribution.

What a student learns from distillation that it would not from plain fine-tuning: the bars beside the hard label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QPlainTextEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from slm_studio.app.worker import start_worker
from slm_studio.config import run_dirs, runs_root
from slm_studio.evaluate.soft_labels import Explanation, TemperatureView, explain, visible
from slm_studio.events import Event
from slm_studio.models.sources import bundled_teachers

TEACHER_ONLY = "(teacher only)"
RUNS_TEACHER = "(the run's teacher)"
TEACHER_COLOR, STUDENT_COLOR, HARD_COLOR = "#2f6fde", "#f2a541", "#17a34a"


class SoftLabelChart(pg.PlotWidget):
    """Teacher and student bars side by side for the shown tokens at one temperature; the hard label in green."""

    def __init__(self, with_legend: bool = True, parent=None) -> None:
        super().__init__(parent=parent)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.setLabel("left", "probability (%)")
        self.getAxis("left").enableAutoSIPrefix(False)  # "0.1" reads better than "100 (x0.001)"
        self.showGrid(y=True, alpha=0.25)
        self.setMinimumHeight(170)
        self.legend = self.addLegend(offset=(-10, 5), labelTextSize="8pt") if with_legend else None
        self.teacher_bars = self.student_bars = None
        self.tick_labels: list[str] = []

    def show_view(self, view: TemperatureView, with_student: bool) -> None:
        self.clear()
        if self.legend is not None:
            self.legend.clear()
        n = len(view.rows)
        x = np.arange(n, dtype=float)
        width = 0.38 if with_student else 0.7
        teacher = np.array([r.teacher for r in view.rows]) * 100
        brushes = [pg.mkBrush(HARD_COLOR if r.hard_label else TEACHER_COLOR) for r in view.rows]
        self.teacher_bars = pg.BarGraphItem(x=x - (0.2 if with_student else 0), height=teacher, width=width,
                                            brushes=brushes, pen=pg.mkPen(None))
        self.addItem(self.teacher_bars)
        self._add_to_legend(TEACHER_COLOR, "teacher")
        self._add_to_legend(HARD_COLOR, "teacher, hard label")
        self.student_bars = None
        if with_student:
            student = np.array([r.student for r in view.rows]) * 100
            self.student_bars = pg.BarGraphItem(x=x + 0.2, height=student, width=width, brush=STUDENT_COLOR,
                                                pen=pg.mkPen(None))
            self.addItem(self.student_bars)
            self._add_to_legend(STUDENT_COLOR, "student")
        self.tick_labels = [("★ " if r.hard_label else "") + visible(r.text) for r in view.rows]
        self.getAxis("bottom").setTicks([list(enumerate(self.tick_labels))])
        self.setXRange(-0.6, n - 0.4, padding=0)
        top = max(teacher.max(), self.student_bars.opts["height"].max() if with_student else 0)
        self.setYRange(0, top * 1.15 or 1, padding=0)
        self.setTitle(chart_title(view), size="9pt")

    def _add_to_legend(self, color: str, name: str) -> None:
        if self.legend is not None:
            self.legend.addItem(pg.BarGraphItem(x=[0], height=[0], width=1, brush=color), name)


def chart_title(view: TemperatureView) -> str:
    parts = [f"<b>T = {view.temperature:g}</b>"]
    if view.kl is not None:
        parts.append(f"KL(teacher‖student) <b>{view.kl:.3f}</b> nats (× T² = {view.kl_scaled:.3f}, the trainer's "
                     "soft loss)")
    parts.append(f"teacher entropy {view.teacher_entropy:.2f} nats")
    rest = f"all other tokens: teacher {view.teacher_rest:.1%}"
    parts.append(rest + (f", student {view.student_rest:.1%}" if view.student_rest is not None else ""))
    return " · ".join(parts)


class ExplainPage(QWidget):
    failed = Signal(str, str)
    explained = Signal(object)  # Explanation, once all three charts show it

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.thread = self.worker = None
        self.result: Explanation | None = None
        self.prompt = QPlainTextEdit("What is the capital of France?")
        self.prompt.setMaximumHeight(60)
        self.continuation = QLineEdit()
        self.continuation.setPlaceholderText("optional: the text that really follows; its first token is the hard "
                                             "label (otherwise the teacher's own top-1)")
        self.raw = QCheckBox("Raw text (no chat template)")
        self.raw.setToolTip("Feed the prompt as it is instead of as a user turn in the teacher's chat template")
        self.student = QComboBox()
        self.student.setEditable(True)
        self.teacher = QComboBox()
        self.teacher.setEditable(True)
        self.teacher.addItems([RUNS_TEACHER] + [s.name for s in bundled_teachers()])
        self.top = QSpinBox(value=8, minimum=2, maximum=30)
        browse, refresh = QPushButton("Browse..."), QPushButton("Refresh")
        browse.clicked.connect(self._on_browse_clicked)
        refresh.clicked.connect(self.refresh)
        self.explain_button = QPushButton("Explain")
        self.explain_button.setObjectName("primary")
        self.explain_button.clicked.connect(self._on_explain_clicked)
        self.status = QLabel("Type a prompt, pick a run (or the teacher alone) and press Explain.")
        self.status.setWordWrap(True)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.charts = [SoftLabelChart(with_legend=i == 0) for i in range(3)]  # one legend serves all three

        form = QGroupBox("Prompt and models")
        f = QFormLayout(form)
        f.addRow("Prompt", self.prompt)
        f.addRow("Continuation", self.continuation)
        student_row = QHBoxLayout()
        student_row.addWidget(self.student, 1)
        student_row.addWidget(browse)
        student_row.addWidget(refresh)
        f.addRow("Student", student_row)
        options = QHBoxLayout()
        options.addWidget(self.teacher, 1)
        options.addWidget(QLabel("Top tokens"))
        options.addWidget(self.top)
        options.addWidget(self.raw)
        f.addRow("Teacher", options)
        layout = QVBoxLayout(self)
        layout.addWidget(form)
        row = QHBoxLayout()
        row.addWidget(self.explain_button)
        row.addWidget(self.status, 1)
        layout.addLayout(row)
        layout.addWidget(self.summary)
        for chart in self.charts:
            layout.addWidget(chart, 1)
        self.refresh()

    @property
    def running(self) -> bool:
        return self.worker is not None

    def refresh(self) -> None:
        current = self.student.currentText()
        self.student.clear()
        self.student.addItems([TEACHER_ONLY] + [str(p) for p in run_dirs("student/config.json")])
        if current:
            self.student.setCurrentText(current)

    def start(self) -> None:
        prompt = self.prompt.toPlainText()
        student = self.student.currentText().strip()
        student = None if student in ("", TEACHER_ONLY) else student
        teacher = self.teacher.currentText().strip()
        teacher = None if teacher in ("", RUNS_TEACHER) else teacher
        continuation, top, chat = self.continuation.text(), self.top.value(), (False if self.raw.isChecked() else None)
        self.thread, self.worker = start_worker(self, lambda on_event, cancel: explain(
            prompt, student, teacher, continuation, top, chat, on_event=on_event, cancel=cancel))
        self.worker.event.connect(self._on_worker_event)
        self.worker.finished.connect(self._on_worker_finished)
        self.worker.failed.connect(self._on_worker_failed)
        self.thread.finished.connect(self._on_thread_finished)
        self.explain_button.setEnabled(False)
        self.status.setText("Loading the models...")
        self.thread.start()

    def show_explanation(self, e: Explanation) -> None:
        self.result = e
        for i, (chart, view) in enumerate(zip(self.charts, e.views)):
            # one chart per event-loop turn: building and painting all three at once blocked the window ~150 ms
            QTimer.singleShot(20 * i, lambda chart=chart, view=view: self._show_chart(chart, view, e))
        how = "as a user turn in the chat template" if e.chat_template else "as raw text"
        source = ("the first token of your continuation" if e.hard_label_source == "continuation"
                  else "no continuation given, so the teacher's own top-1 stands in")
        trained = f" This run distilled at T = {e.train_temperature:g}." if e.train_temperature else ""
        self.summary.setText(
            f"Prompt fed {how}. Hard label ★ <b>{visible(e.hard_label_text)}</b> ({source}): plain fine-tuning puts "
            f"100% on it. The other teacher bars are the soft labels' 'dark knowledge'; higher T spreads more of "
            f"the teacher's probability onto them.{trained}")

    def _show_chart(self, chart: SoftLabelChart, view: TemperatureView, e: Explanation) -> None:
        chart.show_view(view, e.student is not None)
        if chart is self.charts[-1]:
            self.explained.emit(e)

    def _on_explain_clicked(self) -> None:
        if not self.running and self.prompt.toPlainText().strip():
            self.start()

    def _on_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Pick a run directory or a student HF folder",
                                                  str(runs_root()))
        if folder:
            self.student.setCurrentText(str(Path(folder)))

    def _on_worker_event(self, event: Event) -> None:
        self.status.setText(event.message)

    def _on_worker_finished(self, result: Explanation) -> None:
        self.show_explanation(result)
        self.status.setText(f"Teacher {result.teacher}" + (f" vs student {result.student}" if result.student
                                                            else " alone"))

    def _on_worker_failed(self, message: str, details: str) -> None:
        self.status.setText(f"Failed: {message}")
        self.failed.emit(message, details)

    def _on_thread_finished(self) -> None:
        self.thread = self.worker = None
        self.explain_button.setEnabled(True)
