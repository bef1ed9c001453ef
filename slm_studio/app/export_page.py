"""Export page: a run's student to GGUF F16 plus chosen quant levels, with the llama.cpp proof and sizes."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QProgressBar,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from slm_studio.app.worker import start_worker
from slm_studio.config import run_dirs, runs_root
from slm_studio.events import Event
from slm_studio.export.gguf import ExportResult, export_gguf
from slm_studio.export.quantize import QUANT_TYPES
from slm_studio.models.sources import human_bytes


class ExportPage(QWidget):
    exported = Signal(object)  # ExportResult
    failed = Signal(str, str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.thread = self.worker = None
        self.run = QComboBox()
        self.run.setEditable(True)
        browse, refresh = QPushButton("Browse..."), QPushButton("Refresh")
        browse.clicked.connect(self._on_browse_clicked)
        refresh.clicked.connect(self.refresh)
        self.quants = {name: QCheckBox(name) for name in QUANT_TYPES}
        for name in ("Q8_0", "Q4_K_M"):
            self.quants[name].setChecked(True)
        self.export_button = QPushButton("Export to GGUF")
        self.export_button.setObjectName("primary")
        self.export_button.clicked.connect(self._on_export_clicked)
        self.progress = QProgressBar()
        self.status = QLabel("Pick a finished run (or any HF Llama folder) and the quant levels.")
        self.status.setWordWrap(True)
        self.proof = QLabel()
        self.proof.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Type", "Size", "File"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)

        source = QGroupBox("Model")
        s = QHBoxLayout(source)
        s.addWidget(self.run, 1)
        s.addWidget(browse)
        s.addWidget(refresh)
        quant = QGroupBox("Quantization (llama.cpp); F16 is always written and proven first")
        q = QHBoxLayout(quant)
        for box in self.quants.values():
            q.addWidget(box)
        q.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(source)
        layout.addWidget(quant)
        row = QHBoxLayout()
        row.addWidget(self.export_button)
        row.addWidget(self.progress, 1)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.proof)
        layout.addWidget(self.table, 1)
        self.refresh()

    def refresh(self) -> None:
        current = self.run.currentText()
        self.run.clear()
        self.run.addItems([str(p) for p in run_dirs("student/config.json")])
        if current:
            self.run.setCurrentText(current)

    def start(self, path: Path, quants: list[str]) -> None:
        self.table.setRowCount(0)
        self.proof.setText("")
        self.thread, self.worker = start_worker(self, lambda on_event, cancel: export_gguf(
            path, quants=quants, on_event=on_event, cancel=cancel))
        self.worker.event.connect(self._on_worker_event)
        self.worker.finished.connect(self._on_worker_finished)
        self.worker.failed.connect(self._on_worker_failed)
        self.thread.finished.connect(self._on_thread_finished)
        self.export_button.setEnabled(False)
        self.thread.start()

    def _on_export_clicked(self) -> None:
        if self.run.currentText().strip():
            self.start(Path(self.run.currentText().strip()), [n for n, b in self.quants.items() if b.isChecked()])

    def _on_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Pick a run directory or an HF model folder", str(runs_root()))
        if folder:
            self.run.setCurrentText(folder)

    def _on_worker_event(self, event: Event) -> None:
        self.progress.setRange(0, event.total)
        self.progress.setValue(event.step)
        self.status.setText(event.message)

    def _on_worker_finished(self, result: ExportResult) -> None:
        p = result.proof
        self.proof.setText(f"Proof: llama.cpp agrees with torch on {p.agreement:.1%} of {p.positions} next tokens "
                           f"(largest logit difference {p.max_logit_diff:.3f}); the tokenizer "
                           f"{'matches' if p.tokenizer_match else 'differs'}.")
        for name, size in result.sizes().items():
            row = self.table.rowCount()
            self.table.insertRow(row)
            for col, text in enumerate((name, human_bytes(size), str(result.files[name]))):
                self.table.setItem(row, col, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.status.setText(f"Exported to {result.float_path.parent}")
        self.exported.emit(result)

    def _on_worker_failed(self, message: str, details: str) -> None:
        self.status.setText(f"Failed: {message}")
        self.failed.emit(message, details)

    def _on_thread_finished(self) -> None:
        self.thread = self.worker = None
        self.export_button.setEnabled(True)
