"""Progress as data: stages report `Event`s and poll a `CancelToken` once per step."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Event:
    stage: str  # "load", "generate", "train", "eval", ...
    step: int = 0
    total: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""


EventHandler = Callable[[Event], None]


def ignore_event(event: Event) -> None:
    """The do-nothing default for `on_event`."""


class CancelToken:
    """Set from any thread (a Cancel button, Ctrl-C); stages check `cancelled` once per step."""

    def __init__(self) -> None:
        self._flag = threading.Event()

    def cancel(self) -> None:
        self._flag.set()

    @property
    def cancelled(self) -> bool:
        return self._flag.is_set()
