"""The Distill form's Pruning group: method, sparsity, importance score, scope and layers removed."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLabel, QSpinBox

from slm_studio.config import PRUNE_METHODS, PRUNE_SCOPES, PRUNE_SCORES, DistillConfig
from slm_studio.prune import SIZE_NOTE

METHOD_LABELS = {"none": "None", "unstructured": "Unstructured (zero single weights)",
                 "structured": "Structured (remove heads, channels, layers)"}
SCORE_LABELS = {"activation": "Activation-aware (|W| x input norm)", "magnitude": "Magnitude (|W|)"}
SCOPE_LABELS = {"layer": "Per weight matrix", "global": "Global ranking"}


def _combo(labels: dict[str, str], keys: tuple[str, ...]) -> QComboBox:
    box = QComboBox()
    for key in keys:
        box.addItem(labels[key], key)
    return box


class PruningGroup(QGroupBox):
    changed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__("Pruning", parent)
        self.method = _combo(METHOD_LABELS, PRUNE_METHODS)
        self.sparsity = QDoubleSpinBox()
        self.sparsity.setRange(0.0, 0.99)
        self.sparsity.setSingleStep(0.05)
        self.score = _combo(SCORE_LABELS, PRUNE_SCORES)
        self.scope = _combo(SCOPE_LABELS, PRUNE_SCOPES)
        self.layers = QSpinBox()
        self.layers.setRange(0, 200)
        self.note = QLabel(SIZE_NOTE)
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #5f6368;")
        self.fields = {"prune": self.method, "sparsity": self.sparsity, "prune_score": self.score,
                       "prune_scope": self.scope, "prune_layers": self.layers}
        f = QFormLayout(self)
        f.addRow("Method", self.method)
        f.addRow("Sparsity", self.sparsity)
        f.addRow("Importance", self.score)
        f.addRow("Scope", self.scope)
        f.addRow("Whole layers removed", self.layers)
        f.addRow("", self.note)
        for box in (self.method, self.score, self.scope):
            box.currentIndexChanged.connect(self._on_field_changed)
        self.sparsity.valueChanged.connect(self._on_field_changed)
        self.layers.valueChanged.connect(self._on_field_changed)
        self._enable_for_method()

    def values(self) -> dict:
        return {"prune": self.method.currentData(), "sparsity": round(self.sparsity.value(), 4),
                "prune_score": self.score.currentData(), "prune_scope": self.scope.currentData(),
                "prune_layers": self.layers.value()}

    def set_config(self, config: DistillConfig) -> None:
        self.blockSignals(True)
        for box, value in ((self.method, config.prune), (self.score, config.prune_score),
                           (self.scope, config.prune_scope)):
            box.setCurrentIndex(max(0, box.findData(value)))
        self.sparsity.setValue(config.sparsity)
        self.layers.setValue(config.prune_layers)
        self.blockSignals(False)
        self._enable_for_method()

    def _enable_for_method(self) -> None:
        method = self.method.currentData()
        for widget in (self.sparsity, self.score):
            widget.setEnabled(method != "none")
        self.scope.setEnabled(method == "unstructured")
        self.layers.setEnabled(method == "structured")

    def _on_field_changed(self, *_) -> None:
        self._enable_for_method()
        self.changed.emit()
