"""Chat page: teacher | student side by side. One prompt goes to both; replies stream in with their stats."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from PySide6.QtCore import Signal
from PySide6.QtGui import QKeySequence, QShortcut, QTextCursor
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QSpinBox, QSplitter, QVBoxLayout, QWidget)

from slm_studio.app.chat_colouring import ScoredTranscript, colour_reply, legend
from slm_studio.app.worker import start_worker
from slm_studio.chat.scoring import TeacherScorer, TokenScore
from slm_studio.chat.session import ChatSession, ChatSettings, ReplyStats, resolve_chat_model
from slm_studio.errors import UserError
from slm_studio.config import run_dirs
from slm_studio.events import Event
from slm_studio.models.sources import bundled_teachers


def chat_model_choices() -> list[str]:
    exported = [g for run in run_dirs("gguf") for g in sorted((run / "gguf").glob("*.gguf"), reverse=True)]
    return [s.name for s in bundled_teachers()] + [str(p) for p in exported]


@dataclass
class ReplyOutcome:
    stats: ReplyStats
    scores: list[TokenScore] = field(default_factory=list)  # the teacher's view of each reply token
    note: str = ""  # why there are no scores


class ChatPane(QWidget):
    """One model's side: its picker, its transcript and the stats of its last reply."""

    reply_done = Signal()
    failed = Signal(str, str)

    def __init__(self, title: str, parent=None) -> None:
        super().__init__(parent)
        self.session: ChatSession | None = None
        self.history: list[dict] = []
        self.thread = self.worker = None
        self.scorer: TeacherScorer | None = None
        self._reply = ""
        self._reply_start = 0
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.addItems(chat_model_choices())
        self.transcript = ScoredTranscript()
        self.legend = legend()
        self.legend.setVisible(False)
        self.legend_text = self.legend.text()
        self.stats = QLabel("—")
        self.stats.setObjectName("stats")
        heading = QLabel(f"<b>{title}</b>")
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(self.model)
        layout.addWidget(self.transcript, 1)
        layout.addWidget(self.legend)
        layout.addWidget(self.stats)

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def ask(self, prompt: str, settings: ChatSettings, score_with: str | None = None) -> None:
        """Answer `prompt`; with `score_with` (the teacher's model), colour the reply by the teacher's view of it."""
        spec = self.model.currentText().strip()
        self.history.append({"role": "user", "content": prompt})
        self.transcript.append(f"<p><b>You:</b> {html.escape(prompt)}</p><p><b>{html.escape(spec.split('/')[-1])}:"
                               f"</b> </p>")
        self._reply = ""
        self._reply_start = self.transcript.document().characterCount() - 1  # where the streamed reply begins
        history = list(self.history)
        self.thread, self.worker = start_worker(self, lambda on_event, cancel: self._answer(
            spec, history, settings, score_with, on_event, cancel))
        self.worker.event.connect(self._on_worker_event)
        self.worker.finished.connect(self._on_worker_finished)
        self.worker.failed.connect(self._on_worker_failed)
        self.thread.finished.connect(self._on_thread_finished)
        self.thread.start()

    def _answer(self, spec, history, settings, score_with, on_event, cancel) -> ReplyOutcome:
        """Runs on the worker thread."""
        path = resolve_chat_model(spec)
        if self.session is not None and self.session.path != path:
            self.session.close()
            self.session = None
        if self.session is None:
            self.session = ChatSession(path)
        reply = ""
        for piece in self.session.stream(history, settings, cancel):
            reply += piece
            on_event(Event("token", message=piece))
        outcome = ReplyOutcome(self.session.last_stats)
        if score_with and reply and not cancel.cancelled:
            on_event(Event("score", message="the teacher reads the reply..."))
            outcome.scores, outcome.note = self._score(score_with, reply)
        return outcome

    def _score(self, teacher_spec: str, reply: str) -> tuple[list[TokenScore], str]:
        """Runs on the worker thread: the teacher's probability of every token of the reply."""
        try:
            path = resolve_chat_model(teacher_spec)
            if self.scorer is not None and self.scorer.path != path:
                self.scorer.close()
                self.scorer = None
            self.scorer = self.scorer or TeacherScorer(path)
            return self.scorer.score_reply(self.session.llm, self.session.last_prompt_tokens, reply), ""
        except UserError as exc:
            return [], str(exc)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel_token.cancel()

    def clear(self) -> None:
        self.history.clear()
        self.transcript.clear()
        self.stats.setText("—")
        self.legend.setVisible(False)
        if self.session is not None and not self.busy:
            self.session.close()
            self.session = None
        if self.scorer is not None and not self.busy:
            self.scorer.close()
            self.scorer = None

    def _on_worker_event(self, event: Event) -> None:
        if event.stage != "token":
            self.stats.setText(event.message)
            return
        self._reply += event.message
        cursor = self.transcript.textCursor()
        cursor.movePosition(QTextCursor.End)
        cursor.insertText(event.message)
        self.transcript.setTextCursor(cursor)

    def _on_worker_finished(self, outcome: ReplyOutcome) -> None:
        stats = outcome.stats
        self.history.append({"role": "assistant", "content": self._reply})
        self.stats.setText(f"first token {stats.time_to_first_token_s * 1000:.0f} ms · "
                           f"{stats.generation_tokens_per_s:.1f} tokens/s · {stats.generated_tokens} tokens")
        if outcome.scores and colour_reply(self.transcript, self._reply_start, self._reply, outcome.scores):
            self.legend.setText(self.legend_text)
            self.legend.setVisible(True)
        elif outcome.note:
            self.legend.setText(f"No colouring: {html.escape(outcome.note)}")
            self.legend.setVisible(True)

    def _on_worker_failed(self, message: str, details: str) -> None:
        self.history.pop()
        self.stats.setText(f"failed: {message}")
        self.failed.emit(message, details)

    def _on_thread_finished(self) -> None:
        self.thread = self.worker = None
        self.reply_done.emit()


class ChatPage(QWidget):
    failed = Signal(str, str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.teacher = ChatPane("Teacher")
        self.student = ChatPane("Student")
        self.colour = QCheckBox("Colour student tokens")
        self.colour.setToolTip("After each reply, colour the student's tokens by the teacher's probability of them "
                               "(the teacher pane's model reads the student's reply)")
        self.colour.setChecked(True)
        choices = chat_model_choices()
        if len(choices) > 1:
            self.student.model.setCurrentIndex(len(bundled_teachers()))
        for pane in self.panes:
            pane.failed.connect(self.failed)
            pane.reply_done.connect(self._update_buttons)
        self.prompt = QLineEdit()
        self.prompt.setPlaceholderText("Ask both models... (Enter sends)")
        self.prompt.returnPressed.connect(self.send)
        self.send_button, self.stop_button, self.clear_button = (QPushButton("Send"), QPushButton("Stop"),
                                                                 QPushButton("Clear"))
        self.send_button.setObjectName("primary")
        self.send_button.clicked.connect(self.send)
        self.stop_button.clicked.connect(self.stop)
        self.clear_button.clicked.connect(self.clear)
        QShortcut(QKeySequence("Ctrl+L"), self, self.clear)

        self.system = QLineEdit()
        self.system.setPlaceholderText("(the model's default)")
        self.temperature = QDoubleSpinBox(value=0.7, minimum=0.0, maximum=2.0, singleStep=0.1)
        self.top_p = QDoubleSpinBox(value=0.95, minimum=0.05, maximum=1.0, singleStep=0.05)
        self.top_k = QSpinBox(value=40, minimum=0, maximum=500)
        self.repeat_penalty = QDoubleSpinBox(value=1.1, minimum=1.0, maximum=2.0, singleStep=0.05)
        self.max_tokens = QSpinBox(value=256, minimum=1, maximum=4096)
        self.seed = QSpinBox(value=0, minimum=0, maximum=2**31 - 1)
        settings = QGroupBox("Sampling")
        f = QFormLayout(settings)
        f.addRow("System prompt", self.system)
        f.addRow("Temperature", self.temperature)
        f.addRow("Top-p", self.top_p)
        f.addRow("Top-k", self.top_k)
        f.addRow("Repeat penalty", self.repeat_penalty)
        f.addRow("Max tokens", self.max_tokens)
        f.addRow("Seed", self.seed)
        f.addRow(self.colour)
        settings.setMaximumWidth(300)

        splitter = QSplitter()
        splitter.addWidget(self.teacher)
        splitter.addWidget(self.student)
        top = QHBoxLayout()
        top.addWidget(splitter, 1)
        top.addWidget(settings)
        row = QHBoxLayout()
        row.addWidget(self.prompt, 1)
        for b in (self.send_button, self.stop_button, self.clear_button):
            row.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(top, 1)
        layout.addLayout(row)
        self._update_buttons()

    @property
    def panes(self) -> tuple[ChatPane, ChatPane]:
        return self.teacher, self.student

    def settings(self) -> ChatSettings:
        return ChatSettings(system_prompt=self.system.text(), temperature=self.temperature.value(),
                            top_p=self.top_p.value(), top_k=self.top_k.value(),
                            repeat_penalty=self.repeat_penalty.value(), max_tokens=self.max_tokens.value(),
                            seed=self.seed.value())

    def send(self) -> None:
        text = self.prompt.text().strip()
        if not text or any(p.busy for p in self.panes):
            return
        self.prompt.clear()
        teacher = self.teacher.model.currentText().strip() if self.colour.isChecked() else None
        self.teacher.ask(text, self.settings())
        self.student.ask(text, self.settings(), score_with=teacher)
        self._update_buttons()

    def stop(self) -> None:
        for pane in self.panes:
            pane.stop()

    def clear(self) -> None:
        self.stop()
        for pane in self.panes:
            pane.clear()

    def refresh_models(self) -> None:
        for pane in self.panes:
            current = pane.model.currentText()
            pane.model.clear()
            pane.model.addItems(chat_model_choices())
            pane.model.setCurrentText(current)

    def _update_buttons(self) -> None:
        busy = any(p.busy for p in self.panes)
        self.send_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)
