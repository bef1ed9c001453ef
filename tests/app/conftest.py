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
    """Measures the longest gap between ticks of a 5 ms timer: how long the event loop was blocked."""

    def __init__(self) -> None:
        from PySide6.QtCore import QElapsedTimer, QTimer

        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)
        self.last = 0
        self.longest_ms = 0

    def __enter__(self):
        self.clock.start()
        self.last = 0
        self.timer.start()
        return self

    def _tick(self) -> None:
        now = self.clock.elapsed()
        self.longest_ms = max(self.longest_ms, now - self.last)
        self.last = now

    def __exit__(self, *exc) -> None:
        self.timer.stop()
