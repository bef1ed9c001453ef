"""The student's reply coloured by the teacher's probability of each token, with a legend and hover details."""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent
from PySide6.QtGui import QBrush, QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QLabel, QTextBrowser, QToolTip

from slm_studio.chat.scoring import LEVEL_NAMES, TokenScore
from slm_studio.evaluate.soft_labels import visible

# one background per agreement level: the teacher agreed ... the teacher found the token surprising
LEVEL_COLORS = ("#d8f0d8", "#fff1a8", "#ffd08a", "#ff9d9d")


class ScoredTranscript(QTextBrowser):
    """A transcript whose coloured tokens explain themselves on hover."""

    def event(self, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.ToolTip:
            tip = self.cursorForPosition(self.viewport().mapFromGlobal(event.globalPos())).charFormat().toolTip()
            if tip:
                QToolTip.showText(event.globalPos(), tip, self)
            else:
                QToolTip.hideText()
            return True
        return super().event(event)


def token_format(score: TokenScore) -> QTextCharFormat:
    fmt = QTextCharFormat()
    fmt.setBackground(QBrush(QColor(LEVEL_COLORS[score.level])))
    fmt.setToolTip(f"teacher's probability of {visible(score.text)!r}: {score.teacher_prob:.1%}\n"
                   f"teacher's first choice: {visible(score.top_text)!r} ({score.top_prob:.1%})")
    return fmt


def colour_reply(transcript: QTextBrowser, start: int, reply: str, scores: list[TokenScore]) -> bool:
    """Rewrite the reply that begins at document position `start` token by token in its colours. False (and
    nothing changed) when the transcript there does not hold exactly the scored text."""
    cursor = QTextCursor(transcript.document())
    cursor.setPosition(start)
    cursor.movePosition(QTextCursor.End, QTextCursor.KeepAnchor)
    shown = cursor.selectedText().replace("\u2029", "\n")  # Qt marks paragraph breaks with U+2029
    if shown != reply or "".join(s.text for s in scores) != reply:
        return False
    cursor.beginEditBlock()
    cursor.removeSelectedText()
    for score in scores:
        cursor.insertText(score.text, token_format(score))
    cursor.endEditBlock()
    return True


def legend() -> QLabel:
    chips = " ".join(f'<span style="background:{c}">&nbsp;{html.escape(n)}&nbsp;</span>'
                     for c, n in zip(LEVEL_COLORS, LEVEL_NAMES))
    label = QLabel(f"Teacher's probability of each student token: high {chips} low &nbsp;(hover a token)")
    label.setObjectName("legend")
    return label
