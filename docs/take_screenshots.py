"""Screenshots of every page of the real app, for docs/ and the README.

    SLM_STUDIO_RUNS=runs xvfb-run -s "-screen 0 1400x900x24" .venv/bin/python docs/take_screenshots.py

Needs a finished, exported run in $SLM_STUDIO_RUNS (slm-studio distill --preset quick; slm-studio export RUN
--quant Q4_K_M). It trains a short real distillation on the Distill page, then chats teacher vs student.
"""

import sys
import time
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from slm_studio.app.main_window import MainWindow
from slm_studio.app.style import STYLESHEET
from slm_studio.config import preset, runs_root

OUT = Path(__file__).resolve().parent


def wait(app, condition, seconds):
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def shoot(app, window, name):
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    window.grab().save(str(OUT / f"screenshot-{name}.png"))


def main() -> int:
    app = QApplication(sys.argv)
    app.setStyleSheet(STYLESHEET)
    window = MainWindow(QSettings(str(OUT / ".screenshots.ini"), QSettings.IniFormat))
    window.resize(1400, 860)
    window.show()
    finished = sorted(p for p in runs_root().glob("*/gguf/student-Q4_K_M.gguf"))

    config = preset("quick")
    config.steps, config.teacher_prompts, config.eval_every = 40, "", 10
    window.distill_page.form.set_config(config)
    window.distill_page.start(config, runs_root() / "screenshot-run")
    wait(app, lambda: window.distill_page.progress.value() >= 30, 600)
    shoot(app, window, "distill")
    window.distill_page.cancel()
    wait(app, lambda: not window.distill_page.running, 120)

    window.sidebar.setCurrentRow(1)
    if finished:
        window.export_page.start(finished[-1].parent.parent, ["Q8_0", "Q4_K_M"])
        wait(app, lambda: window.export_page.thread is None, 300)
    shoot(app, window, "export")

    window.sidebar.setCurrentRow(2)
    chat = window.chat_page
    if finished:
        chat.student.model.setCurrentText(str(finished[-1]))
    chat.temperature.setValue(0.0)
    chat.max_tokens.setValue(60)
    chat.prompt.setText("Give three tips for staying focused while studying.")
    chat.send()
    wait(app, lambda: not any(p.busy for p in chat.panes), 120)
    shoot(app, window, "chat")

    window.sidebar.setCurrentRow(3)
    window.runs_page.table.selectAll()
    shoot(app, window, "runs")
    window.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
