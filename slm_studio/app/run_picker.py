"""The run chooser and quant-level boxes that the Export and Evaluate pages share."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QPushButton

from slm_studio.config import run_dirs, runs_root
from slm_studio.export.quantize import QUANT_TYPES


class RunPicker(QGroupBox):
    """Finished runs under runs_root() in an editable list, a Browse... button and Refresh."""

    def __init__(self, title: str, browse_caption: str, parent=None) -> None:
        super().__init__(title, parent)
        self.browse_caption = browse_caption
        self.combo = QComboBox()
        self.combo.setEditable(True)
        browse, refresh = QPushButton("Browse..."), QPushButton("Refresh")
        browse.clicked.connect(self._on_browse_clicked)
        refresh.clicked.connect(self.refresh)
        layout = QHBoxLayout(self)
        layout.addWidget(self.combo, 1)
        layout.addWidget(browse)
        layout.addWidget(refresh)
        self.refresh()

    def refresh(self) -> None:
        current = self.combo.currentText()
        self.combo.clear()
        self.combo.addItems([str(p) for p in run_dirs("student/config.json")])
        if current:
            self.combo.setCurrentText(current)

    def _on_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.browse_caption, str(runs_root()))
        if folder:
            self.combo.setCurrentText(folder)


class QuantChoice(QGroupBox):
    """One checkbox per llama.cpp quant type; `boxes` maps type -> checkbox, `chosen()` the checked types."""

    def __init__(self, title: str, checked: tuple[str, ...], parent=None) -> None:
        super().__init__(title, parent)
        self.boxes = {name: QCheckBox(name) for name in QUANT_TYPES}
        self.row = QHBoxLayout(self)
        for name, box in self.boxes.items():
            box.setChecked(name in checked)
            self.row.addWidget(box)
        self.row.addStretch(1)

    def chosen(self) -> list[str]:
        return [name for name, box in self.boxes.items() if box.isChecked()]
