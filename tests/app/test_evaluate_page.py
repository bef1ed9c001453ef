"""Evaluate page: pick a finished tiny run, evaluate it on the worker thread, see the tables and the plot."""

from slm_studio.app.main_window import PAGES
from slm_studio.distill.trainer import distill
from tests.app.test_distill_page import _tiny

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_evaluate_page_evaluates_a_run_and_shows_tables_and_plot(qtbot, window, tiny_teacher):
    from slm_studio.config import runs_root

    run = runs_root() / "tiny-run"
    distill(_tiny(tiny_teacher, steps=2), run)
    page = window.evaluate_page
    window.sidebar.setCurrentRow(PAGES.index("Evaluate"))
    assert window.stack.currentWidget() is page and page.run.findText(str(run)) >= 0
    page.run.setCurrentText(str(run))
    for name, box in page.quants.items():
        box.setChecked(name == "Q8_0")
    page.threads.setValue(1)  # other test processes may keep every core busy
    with qtbot.waitSignal(page.evaluated, timeout=240_000) as done:
        page.evaluate_button.click()
        assert not page.evaluate_button.isEnabled() and page.cancel_button.isEnabled()
    result = done.args[0]
    qtbot.waitUntil(lambda: page.thread is None)
    assert page.evaluate_button.isEnabled() and page.progress.value() == page.progress.maximum()
    assert page.trade_off.rowCount() == 4 and page.trade_off.item(2, 0).text() == "student"
    assert page.quality.item(1, 1).text() == f"{result.teacher_ppl:,.2f}"
    assert len(page.plot.labels) == 4 and "report.md" in page.status.text()
    assert (run / "pareto.png").read_bytes().startswith(PNG_MAGIC) and (run / "report.md").exists()

    # a run evaluated before shows its saved numbers as soon as it is picked
    page.quality.setRowCount(0)
    page.run.setCurrentText("")
    page.run.setCurrentText(str(run))
    assert page.quality.rowCount() > 5 and "Evaluated before" in page.status.text()
