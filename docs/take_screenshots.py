"""Screenshots of every page of the real app, for docs/ and the README.

    SLM_STUDIO_RUNS=runs xvfb-run -s "-screen 0 1400x900x24" .venv/bin/python docs/take_screenshots.py

Needs a finished, exported run in $SLM_STUDIO_RUNS (slm-studio distill --preset quick; slm-studio export RUN
--quant Q4_K_M). It trains a short real distillation on the Distill page, then chats teacher vs student, then
evaluates the run (or shows its earlier evaluation). Name pages to take only those: `... take_screenshots.py evaluate`.
"""

import sys
import time
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from slm_studio.app.main_window import PAGES, MainWindow
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
    wanted = [name.lower() for name in sys.argv[1:]] or [name.lower() for name in PAGES]
    if "distill" in wanted:
        take_distill(app, window)
    if "export" in wanted:
        take_export(app, window, finished)
    if "chat" in wanted:
        take_chat(app, window, finished)
    if "runs" in wanted:
        window.sidebar.setCurrentRow(PAGES.index("Runs"))
        window.runs_page.table.selectAll()
        shoot(app, window, "runs")
    if "evaluate" in wanted:
        take_evaluate(app, window, finished)
    if "explain" in wanted:
        take_explain(app, window, finished)
    window.shutdown()
    return 0


def take_distill(app, window) -> None:
    config = preset("quick")
    config.steps, config.teacher_prompts, config.eval_every = 40, "", 10
    window.distill_page.form.set_config(config)
    window.distill_page.start(config, runs_root() / "screenshot-run")
    wait(app, lambda: window.distill_page.progress.value() >= 30, 600)
    shoot(app, window, "distill")
    window.distill_page.cancel()
    wait(app, lambda: not window.distill_page.running, 120)


def take_export(app, window, finished) -> None:
    window.sidebar.setCurrentRow(PAGES.index("Export"))
    if finished:
        window.export_page.start(finished[-1].parent.parent, ["Q8_0", "Q4_K_M"])
        wait(app, lambda: window.export_page.thread is None, 300)
    shoot(app, window, "export")


def take_chat(app, window, finished) -> None:
    window.sidebar.setCurrentRow(PAGES.index("Chat"))
    chat = window.chat_page
    if finished:
        chat.student.model.setCurrentText(str(finished[-1]))
    chat.temperature.setValue(0.0)
    chat.max_tokens.setValue(60)
    chat.prompt.setText("Give three tips for staying focused while studying.")
    chat.send()
    wait(app, lambda: not any(p.busy for p in chat.panes), 120)
    shoot(app, window, "chat")


def take_evaluate(app, window, finished) -> None:
    window.sidebar.setCurrentRow(PAGES.index("Evaluate"))
    page = window.evaluate_page
    if finished:
        run = finished[-1].parent.parent
        page.run.setCurrentText(str(run))
        if not (run / "eval.json").exists():
            page.start(run, ["Q8_0", "Q5_K_M", "Q4_K_M"])
            wait(app, lambda: page.thread is None, 1200)
    shoot(app, window, "evaluate")


def take_explain(app, window, finished) -> None:
    window.sidebar.setCurrentRow(PAGES.index("Explain"))
    page = window.explain_page
    if finished:
        page.student.setCurrentText(str(finished[-1].parent.parent))
    page.prompt.setPlainText("The capital of France is")
    page.continuation.setText(" Paris")
    page.raw.setChecked(True)
    page.start()
    wait(app, lambda: not page.running and page.result is not None, 300)
    wait(app, lambda: page.charts[-1].teacher_bars is not None, 5)
    shoot(app, window, "explain")


if __name__ == "__main__":
    sys.exit(main())
