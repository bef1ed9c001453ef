import pytest
from PySide6.QtCore import QSettings


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    from slm_studio.app.main_window import MainWindow

    monkeypatch.setenv("SLM_STUDIO_RUNS", str(tmp_path / "runs"))
    win = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    qtbot.addWidget(win)
    win.show()
    yield win
    win.shutdown()


class StallProbe:
    """Measures the gaps between ticks of a 5 ms timer: how long the event loop was blocked.

    `responsive()` is the tests' bound: no gap of 250 ms or more, and at most one of 100 ms or more. Work that holds
    the GIL (a GC pass, a tokenizer parse) blocks repeatedly; on this shared 2-core machine a single gap just over
    100 ms also came from the OS (seen once in CI, not reproduced in 6 runs), and should not fail the suite.
    """

    def __init__(self) -> None:
        from PySide6.QtCore import QElapsedTimer, QTimer

        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)
        self.last = 0
        self.longest_ms = 0
        self.gaps_ms: list[int] = []

    def __enter__(self):
        self.clock.start()
        self.last = 0
        self.timer.start()
        return self

    def _tick(self) -> None:
        now = self.clock.elapsed()
        self.longest_ms = max(self.longest_ms, now - self.last)
        self.gaps_ms.append(now - self.last)
        self.last = now

    def responsive(self) -> bool:
        return self.longest_ms < 250 and sum(gap >= 100 for gap in self.gaps_ms) <= 1

    def __exit__(self, *exc) -> None:
        self.timer.stop()
