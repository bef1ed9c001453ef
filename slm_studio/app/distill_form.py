"""The Distill page's settings form: builds the same `DistillConfig` the CLI reads, marks invalid fields."""

from __future__ import annotations


from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout,
                               QLabel, QLineEdit, QListWidget, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from slm_studio.app.memory_group import MemoryGroup
from slm_studio.app.pruning_group import PruningGroup
from slm_studio.config import LOSSES, PRESETS, DistillConfig, help_text, preset
from slm_studio.errors import UserError
from slm_studio.models.sources import bundled_teachers, describe, human_bytes, human_count, resolve

LOSS_LABELS = {"forward_kl": "Forward KL", "reverse_kl": "Reverse KL", "jsd": "Generalized JSD"}
PROMPT_CHOICES = {"": "None", "default": "Bundled prompt set (64 prompts)"}
INVALID_STYLE = "border: 1px solid #d93025; background: #fdecea;"


def _spin(lo: int, hi: int, step: int = 1) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    return box


def _dspin(lo: float, hi: float, step: float, decimals: int = 2) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setDecimals(decimals)
    return box


class DistillForm(QWidget):
    changed = Signal()  # any field changed; `problems()` tells whether Start may run

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._teacher_info = None
        self._build()
        self.set_config(preset("quick"))

    # ---- building
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.preset = QComboBox()
        self.preset.addItems(["custom", *PRESETS])
        self.preset.currentTextChanged.connect(self._on_preset_changed)

        self.teacher = QComboBox()
        self.teacher.setEditable(True)
        self.teacher.addItems([s.name for s in bundled_teachers()])
        open_hf, open_gguf = QPushButton("HF folder..."), QPushButton("GGUF...")
        open_hf.clicked.connect(self._on_open_hf_clicked)
        open_gguf.clicked.connect(self._on_open_gguf_clicked)
        self.teacher_info = QLabel()
        self.teacher_info.setWordWrap(True)

        self.student_layers = _spin(1, 200)
        self.mlp_ratio = _dspin(0.05, 1.0, 0.05)
        self.student_model = QLineEdit()
        self.student_model.setPlaceholderText("derive from the teacher (or pick a local HF model)")
        pick_student = QPushButton("Local model...")
        pick_student.clicked.connect(self._on_pick_student_clicked)
        self.student_info = QLabel()
        self.student_info.setWordWrap(True)

        self.data = QListWidget()
        self.data.setMaximumHeight(64)
        self.data.setSelectionMode(QListWidget.ExtendedSelection)
        add_data, remove_data = QPushButton("Add file..."), QPushButton("Remove")
        add_data.clicked.connect(self._on_add_data_clicked)
        remove_data.clicked.connect(self._on_remove_data_clicked)
        self.teacher_prompts = QComboBox()
        self.teacher_prompts.setEditable(True)
        self.teacher_prompts.addItems(PROMPT_CHOICES.values())

        self.temperature = _dspin(0.0, 20.0, 0.5)
        self.alpha = _dspin(0.0, 1.0, 0.05)
        self.loss = QComboBox()
        self.loss.addItems([LOSS_LABELS[k] for k in LOSSES])
        self.jsd_beta = _dspin(0.0, 1.0, 0.05)
        self.attention_weight = _dspin(0.0, 100.0, 0.1)
        self.hidden_weight = _dspin(0.0, 100.0, 0.1)
        self.steps = _spin(0, 1_000_000, 50)
        self.lr = _dspin(0.0, 1.0, 1e-4, decimals=6)
        self.batch_size = _spin(0, 512)
        self.seq_len = _spin(0, 8192, 32)
        self.grad_accum = _spin(0, 256)

        self.fields = {"teacher": self.teacher, "student_layers": self.student_layers,
                       "student_mlp_ratio": self.mlp_ratio, "student_model": self.student_model, "data": self.data,
                       "teacher_prompts": self.teacher_prompts, "temperature": self.temperature,
                       "alpha": self.alpha, "loss": self.loss, "jsd_beta": self.jsd_beta,
                       "attention_weight": self.attention_weight, "hidden_weight": self.hidden_weight,
                       "steps": self.steps,
                       "lr": self.lr, "batch_size": self.batch_size, "seq_len": self.seq_len,
                       "grad_accum": self.grad_accum}
        self.pruning = PruningGroup()
        self.memory = MemoryGroup()
        self.fields.update(self.pruning.fields)
        self.fields.update(self.memory.fields)
        for name, widget in self.fields.items():
            widget.setToolTip(help_text(name))

        models = QGroupBox("Teacher and student")
        f = QFormLayout(models)
        f.addRow("Preset", self.preset)
        f.addRow("Teacher", _row(self.teacher, open_hf, open_gguf))
        f.addRow("", self.teacher_info)
        f.addRow("Layers to keep", self.student_layers)
        f.addRow("MLP width kept", self.mlp_ratio)
        f.addRow("Student model", _row(self.student_model, pick_student))
        f.addRow("", self.student_info)
        data = QGroupBox("Data")
        f = QFormLayout(data)
        f.addRow("Corpora", self.data)
        f.addRow("", _row(add_data, remove_data))
        f.addRow("Teacher answers", self.teacher_prompts)
        losses = QGroupBox("Distillation")
        f = QFormLayout(losses)
        f.addRow("Temperature T", self.temperature)
        f.addRow("Alpha (soft vs hard)", self.alpha)
        f.addRow("Soft loss", self.loss)
        f.addRow("JSD beta", self.jsd_beta)
        f.addRow("Attention transfer", self.attention_weight)
        f.addRow("Hidden-state loss", self.hidden_weight)
        training = QGroupBox("Training")
        f = QFormLayout(training)
        f.addRow("Steps", self.steps)
        f.addRow("Learning rate", self.lr)
        f.addRow("Batch size", self.batch_size)
        f.addRow("Sequence length", self.seq_len)
        f.addRow("Gradient accumulation", self.grad_accum)
        self.problem_label = QLabel()
        self.problem_label.setStyleSheet("color: #d93025;")
        self.problem_label.setWordWrap(True)
        for group in (models, data, losses, training, self.pruning, self.memory):
            layout.addWidget(group)
        layout.addWidget(self.problem_label)
        layout.addStretch(1)

        for box in (self.student_layers, self.steps, self.batch_size, self.seq_len, self.grad_accum):
            box.valueChanged.connect(self._on_field_changed)
        for box in (self.mlp_ratio, self.temperature, self.alpha, self.jsd_beta, self.attention_weight,
                    self.hidden_weight, self.lr):
            box.valueChanged.connect(self._on_field_changed)
        self.loss.currentIndexChanged.connect(self._on_field_changed)
        self.teacher.currentTextChanged.connect(self._on_teacher_changed)
        self.teacher_prompts.currentTextChanged.connect(self._on_field_changed)
        self.student_model.textChanged.connect(self._on_field_changed)
        self.pruning.changed.connect(self._on_field_changed)
        self.memory.changed.connect(self._on_field_changed)

    # ---- config <-> widgets
    def config(self) -> DistillConfig:
        prompts = self.teacher_prompts.currentText()
        prompts = {v: k for k, v in PROMPT_CHOICES.items()}.get(prompts, prompts)
        return DistillConfig(
            teacher=self.teacher.currentText().strip(), student_layers=self.student_layers.value(),
            student_mlp_ratio=round(self.mlp_ratio.value(), 4), student_model=self.student_model.text().strip(),
            data=[self.data.item(i).text() for i in range(self.data.count())], teacher_prompts=prompts,
            temperature=self.temperature.value(), alpha=self.alpha.value(), loss=LOSSES[self.loss.currentIndex()],
            jsd_beta=self.jsd_beta.value(), attention_weight=self.attention_weight.value(),
            hidden_weight=self.hidden_weight.value(), steps=self.steps.value(), lr=self.lr.value(),
            batch_size=self.batch_size.value(), seq_len=self.seq_len.value(), grad_accum=self.grad_accum.value(),
            **self.pruning.values(), **self.memory.values(), **{k: v for k, v in self._hidden.items()})

    def set_config(self, config: DistillConfig) -> None:
        self._hidden = {k: v for k, v in config.to_dict().items() if k not in self.fields}  # kept as loaded
        self.blockSignals(True)
        if self.teacher.findText(config.teacher) < 0:
            self.teacher.addItem(config.teacher)
        self.teacher.setCurrentText(config.teacher)
        self.student_layers.setValue(config.student_layers)
        self.mlp_ratio.setValue(config.student_mlp_ratio)
        self.student_model.setText(config.student_model)
        self.data.clear()
        self.data.addItems(config.data)
        self.teacher_prompts.setCurrentText(PROMPT_CHOICES.get(config.teacher_prompts, config.teacher_prompts))
        self.temperature.setValue(config.temperature)
        self.alpha.setValue(config.alpha)
        self.loss.setCurrentIndex(LOSSES.index(config.loss) if config.loss in LOSSES else 0)
        self.jsd_beta.setValue(config.jsd_beta)
        self.attention_weight.setValue(config.attention_weight)
        self.hidden_weight.setValue(config.hidden_weight)
        self.steps.setValue(config.steps)
        self.lr.setValue(config.lr)
        self.batch_size.setValue(config.batch_size)
        self.seq_len.setValue(config.seq_len)
        self.grad_accum.setValue(config.grad_accum)
        self.pruning.set_config(config)
        self.memory.set_config(config)
        self.blockSignals(False)
        self._on_teacher_changed(config.teacher)

    # ---- validation
    def problems(self) -> dict[str, str]:
        config = self.config()
        problems = config.problems()
        try:
            resolve(config.teacher)
        except UserError as exc:
            problems["teacher"] = str(exc)
        info = self._teacher_info
        if info and not config.student_model and config.student_layers > info.layers:
            problems["student_layers"] = f"the teacher has only {info.layers} layers"
        if config.student_model:
            try:
                student = describe(resolve(config.student_model))
                if info and student.vocab_size != info.vocab_size:
                    problems["student_model"] = (f"vocabulary mismatch: teacher vocab {info.vocab_size}, "
                                                 f"student {student.vocab_size}")
            except UserError as exc:
                problems["student_model"] = str(exc)
        return problems

    def _refresh(self) -> None:
        problems = self.problems()
        for name, widget in self.fields.items():
            widget.setStyleSheet(INVALID_STYLE if name in problems else "")
            widget.setToolTip(problems.get(name, help_text(name)))
        self.problem_label.setText("\n".join(problems.values()))
        self._update_student_info()
        self.changed.emit()

    def _update_student_info(self) -> None:
        info = self._teacher_info
        if info is None or self.student_model.text().strip():
            self.student_info.setText("")
            return
        keep = min(self.student_layers.value(), info.layers)
        n = info.student_parameters(keep, self.mlp_ratio.value())
        self.student_info.setText(f"student: {human_count(n)} parameters ({n / info.parameters:.0%} of the "
                                  f"teacher), {human_bytes(n * 2)} at F16")

    # ---- slots
    def _on_field_changed(self, *_):
        self._refresh()

    def _on_teacher_changed(self, text: str) -> None:
        try:
            self._teacher_info = describe(resolve(text.strip()))
            i = self._teacher_info
            self.teacher_info.setText(f"{i.architecture}, {human_count(i.parameters)} parameters, {i.layers} layers, "
                                      f"vocab {i.vocab_size}, {human_bytes(i.file_bytes)}")
            self.student_layers.setMaximum(i.layers)
        except UserError:
            self._teacher_info = None
            self.teacher_info.setText("")
        self._refresh()

    def _on_preset_changed(self, name: str) -> None:
        if name in PRESETS:
            teacher = self.teacher.currentText()
            config = preset(name)
            config.teacher = teacher
            self.set_config(config)

    def _on_open_hf_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a Hugging Face model folder")
        if folder:
            self.teacher.setCurrentText(folder)

    def _on_open_gguf_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model", "", "GGUF models (*.gguf)")
        if path:
            self.teacher.setCurrentText(path)

    def _on_pick_student_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Pick a local student model folder")
        if folder:
            self.student_model.setText(folder)

    def _on_remove_data_clicked(self) -> None:
        for item in self.data.selectedItems():
            self.data.takeItem(self.data.row(item))
        self._refresh()

    def _on_add_data_clicked(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add corpora", "", "Text corpora (*.txt *.jsonl)")
        self.data.addItems(paths)
        self._refresh()


def _row(*widgets) -> QWidget:
    box = QWidget()
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        layout.addWidget(w, 1 if isinstance(w, (QLineEdit, QComboBox)) else 0)
    return box
