"""Errors as dialogs: a plain message, details behind a button, never only a traceback on a terminal."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget


def show_error(parent: QWidget | None, message: str, details: str = "", title: str = "SLM Studio") -> QMessageBox:
    box = QMessageBox(QMessageBox.Critical, title, message, QMessageBox.Ok, parent)
    if details:
        box.setDetailedText(details)
    box.setObjectName("errorDialog")
    box.open()  # non-blocking: the event loop (and tests) keep running
    return box
