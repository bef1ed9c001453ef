"""A terminal progress bar that renders `Event`s (the CLI's counterpart of the app's progress widgets)."""

from __future__ import annotations

import sys
import time

from slm_studio.events import Event


def format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class TerminalProgress:
    def __init__(self, stream=None, width: int = 28) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self._bar_open = False
        self._last_draw = 0.0

    def __call__(self, event: Event) -> None:
        if event.message:
            self._line(f"[{event.stage}] {event.message}")
        if "teacher_ppl" in event.metrics:
            m = event.metrics
            self._line(f"[eval] held-out perplexity before training: teacher {m['teacher_ppl']:.1f}, "
                       f"untrained student {m['untrained_ppl']:.1f}")
        elif event.total and (event.metrics or event.stage in ("generate", "cache")):
            self._bar(event)

    def _line(self, text: str) -> None:
        if self._bar_open:
            self.stream.write("\n")
            self._bar_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def _bar(self, event: Event) -> None:
        now = time.monotonic()
        if now - self._last_draw < 0.2 and event.step < event.total and "eval_ppl" not in event.metrics:
            return
        self._last_draw = now
        filled = int(self.width * event.step / event.total)
        m = event.metrics
        parts = [f"{event.stage} [{'#' * filled}{'.' * (self.width - filled)}] {event.step}/{event.total}"]
        for key, fmt in (("loss", "loss {:.3f}"), ("kl", "kl {:.3f}"), ("ce", "ce {:.3f}"),
                         ("eval_ppl", "held-out ppl {:.1f}"), ("tokens_per_s", "{:.0f} tok/s")):
            if key in m:
                parts.append(fmt.format(m[key]))
        if "eta_s" in m:
            parts.append(f"eta {format_seconds(m['eta_s'])}")
        self.stream.write("\r" + "  ".join(parts) + "\033[K")
        self._bar_open = True
        if event.step >= event.total or "eval_ppl" in m:
            self.stream.write("\n")
            self._bar_open = False
        self.stream.flush()
