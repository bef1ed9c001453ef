"""The one worker pattern for every long task: a QObject moved to a QThread that runs a stage function.

The stage's events cross to the main thread as a signal; exceptions never escape into Qt: they arrive as
`failed(message, details)`.
"""

from __future__ import annotations

import traceback
from typing import Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from slm_studio.errors import Cancelled, UserError
from slm_studio.events import CancelToken, Event


class StageWorker(QObject):
    event = Signal(object)  # slm_studio.events.Event
    finished = Signal(object)  # the stage's result
    failed = Signal(str, str)  # plain message, details
    cancelled = Signal()

    def __init__(self, stage: Callable[..., object]) -> None:
        """`stage(on_event, cancel)` runs on the worker thread."""
        super().__init__()
        self.stage = stage
        self.cancel_token = CancelToken()

    @Slot()
    def work(self) -> None:
        try:
            result = self.stage(self._emit_event, self.cancel_token)
        except Cancelled:
            self.cancelled.emit()
        except UserError as exc:
            self.failed.emit(str(exc), "")
        except Exception as exc:  # noqa: BLE001 - shown to the user as a dialog with details
            self.failed.emit(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        else:
            self.finished.emit(result)

    def _emit_event(self, event: Event) -> None:
        self.event.emit(event)


def start_worker(parent: QObject, stage: Callable[..., object]) -> tuple[QThread, StageWorker]:
    """Create, wire and start a worker; the caller connects its signals before events arrive (queued)."""
    thread = QThread(parent)
    worker = StageWorker(stage)
    worker.moveToThread(thread)
    thread.started.connect(worker.work)
    for signal in (worker.finished, worker.failed, worker.cancelled):
        signal.connect(thread.quit)
    thread.finished.connect(worker.deleteLater)
    thread.finished.connect(thread.deleteLater)
    return thread, worker
