"""Runs page: every run directory with its settings, status and final numbers; overlay selected curves."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QPushButton, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from slm_studio.app.plots import MetricPlot
from slm_studio.config import DistillConfig, run_dirs
from slm_studio.distill.checkpoint import latest_checkpoint
from slm_studio.errors import UserError
from slm_studio.fileio import read_jsonl

COLUMNS = ["Run", "Status", "Teacher", "Layers", "Steps", "T", "Alpha", "Teacher ppl", "Student ppl"]


def run_summary(run_dir: Path) -> dict:
    """What the table shows for one run directory."""
    try:
        config = DistillConfig.load(run_dir / "run.toml")
    except UserError:
        return {"Run": run_dir.name, "Status": "unreadable run.toml"}
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    status = ("finished" if summary else "resumable" if latest_checkpoint(run_dir) else "incomplete")
    return {"Run": run_dir.name, "Status": status, "Teacher": Path(config.teacher).name,
            "Layers": str(config.student_layer_list or config.student_layers), "Steps": str(config.steps),
            "T": f"{config.temperature:g}", "Alpha": f"{config.alpha:g}",
            "Teacher ppl": f"{summary['teacher_ppl']:.1f}" if summary else "",
            "Student ppl": f"{summary['student_ppl']:.1f}" if summary else ""}


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return read_jsonl(path) if path.exists() else []  # a line cut short by a crash is skipped


class RunsPage(QWidget):
    rerun_requested = Signal(object)  # DistillConfig

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.runs: list[Path] = []
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._on_table_selection_changed)
        self.loss_plot = MetricPlot("Total loss of the selected runs", "loss")
        self.kl_plot = MetricPlot("KL of the selected runs", "kl")
        refresh, open_folder, rerun = QPushButton("Refresh"), QPushButton("Open folder"), QPushButton("Re-run config")
        refresh.clicked.connect(self.refresh)
        open_folder.clicked.connect(self._on_open_folder_clicked)
        rerun.clicked.connect(self._on_rerun_clicked)
        buttons = QHBoxLayout()
        for b in (refresh, open_folder, rerun):
            buttons.addWidget(b)
        buttons.addStretch(1)
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.kl_plot)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 2)
        layout.addLayout(plots, 3)
        self.refresh()

    def refresh(self) -> None:
        self.runs = run_dirs()
        self.table.setRowCount(len(self.runs))
        for row, run in enumerate(self.runs):
            summary = run_summary(run)
            for col, name in enumerate(COLUMNS):
                self.table.setItem(row, col, QTableWidgetItem(summary.get(name, "")))
        self.table.resizeColumnsToContents()

    def selected_runs(self) -> list[Path]:
        return [self.runs[i.row()] for i in self.table.selectionModel().selectedRows()]

    def _on_table_selection_changed(self) -> None:
        for plot in (self.loss_plot, self.kl_plot):
            plot.clear_series()
        for run in self.selected_runs():
            rows = read_metrics(run)
            steps = [r["step"] for r in rows]
            self.loss_plot.set_series(run.name, steps, [r["loss"] for r in rows])
            self.kl_plot.set_series(run.name, steps, [r["kl"] for r in rows])

    def _on_open_folder_clicked(self) -> None:
        for run in self.selected_runs()[:1]:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(run.resolve())))

    def _on_rerun_clicked(self) -> None:
        for run in self.selected_runs()[:1]:
            self.rerun_requested.emit(DistillConfig.load(run / "run.toml"))
