"""The Distill form's Speed and memory group: the cached teacher, the optimizer's moments, activation checkpointing."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QGroupBox, QSpinBox

from slm_studio.config import DistillConfig

MOMENT_LABELS = {"bf16": "bf16 (half the optimizer's memory)", "fp32": "fp32 (torch's AdamW)"}


def _spin(hi: int, step: int, zero_text: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(0, hi)
    box.setSingleStep(step)
    box.setSpecialValueText(zero_text)
    return box


class MemoryGroup(QGroupBox):
    changed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__("Speed and memory", parent)
        self.topk = _spin(4096, 16, "live teacher every step")
        self.tail = _spin(4096, 64, "none (the rest as one bucket)")
        self.moments = QComboBox()
        for key, label in MOMENT_LABELS.items():
            self.moments.addItem(label, key)
        self.checkpointing = QCheckBox("recompute layer activations in the backward pass")
        self.fields = {"teacher_topk": self.topk, "teacher_tail_samples": self.tail, "optimizer_state": self.moments,
                       "activation_checkpointing": self.checkpointing}
        f = QFormLayout(self)
        f.addRow("Cached teacher: top k", self.topk)
        f.addRow("Tail samples per token", self.tail)
        f.addRow("Optimizer moments", self.moments)
        f.addRow("Activations", self.checkpointing)
        self.topk.valueChanged.connect(self._on_field_changed)
        self.tail.valueChanged.connect(self._on_field_changed)
        self.moments.currentIndexChanged.connect(self._on_field_changed)
        self.checkpointing.toggled.connect(self._on_field_changed)
        self._enable()

    def values(self) -> dict:
        return {"teacher_topk": self.topk.value(), "teacher_tail_samples": self.tail.value(),
                "optimizer_state": self.moments.currentData(),
                "activation_checkpointing": self.checkpointing.isChecked()}

    def set_config(self, config: DistillConfig) -> None:
        self.blockSignals(True)
        self.topk.setValue(config.teacher_topk)
        self.tail.setValue(config.teacher_tail_samples)
        self.moments.setCurrentIndex(max(0, self.moments.findData(config.optimizer_state)))
        self.checkpointing.setChecked(config.activation_checkpointing)
        self.blockSignals(False)
        self._enable()

    def _enable(self) -> None:
        self.tail.setEnabled(self.topk.value() > 0)

    def _on_field_changed(self, *_) -> None:
        self._enable()
        self.changed.emit()
