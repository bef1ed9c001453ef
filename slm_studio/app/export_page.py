"""Export page: a run's student to GGUF F16 plus chosen quant levels, with the llama.cpp proof and sizes."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QProgressBar, QPushButton, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from slm_studio.app.run_picker import QuantChoice, RunPicker
from slm_studio.app.worker import start_worker
from slm_studio.events import Event
from slm_studio.export.gguf import ExportResult, export_gguf
from slm_studio.models.sources import human_bytes


class ExportPage(QWidget):
    exported = Signal(object)  # ExportResult
    failed = Signal(str, str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.thread = self.worker = None
        self.picker = RunPicker("Model", "Pick a run directory or an HF model folder")
        self.run = self.picker.combo
        self.quant_choice = QuantChoice("Quantization (llama.cpp); F16 is always written and proven first",
                                        ("Q8_0", "Q4_K_M"))
        self.quants = self.quant_choice.boxes
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

        layout = QVBoxLayout(self)
        layout.addWidget(self.picker)
        layout.addWidget(self.quant_choice)
        row = QHBoxLayout()
        row.addWidget(self.export_button)
        row.addWidget(self.progress, 1)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.proof)
        layout.addWidget(self.table, 1)

    def refresh(self) -> None:
        self.picker.refresh()

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
            self.start(Path(self.run.currentText().strip()), self.quant_choice.chosen())

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
