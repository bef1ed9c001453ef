"""Export page and Runs page over a finished tiny run."""

from slm_studio.distill.trainer import distill
from tests.app.test_distill_page import _tiny


def test_export_page_exports_and_runs_page_lists(qtbot, window, tiny_teacher, tmp_path):
    from slm_studio.config import runs_root

    run = runs_root() / "tiny-run"
    distill(_tiny(tiny_teacher, steps=3), run)
    page = window.export_page
    page.refresh()
    assert page.run.findText(str(run)) >= 0
    page.run.setCurrentText(str(run))
    for name, box in page.quants.items():
        box.setChecked(name == "Q8_0")
    with qtbot.waitSignal(page.exported, timeout=120_000) as done:
        page.export_button.click()
    assert set(done.args[0].files) == {"F16", "Q8_0"}
    assert page.table.rowCount() == 2 and "agrees with torch" in page.proof.text()
    assert (run / "gguf" / "student-Q8_0.gguf").exists()

    runs = window.runs_page
    window.sidebar.setCurrentRow(3)
    assert runs.table.rowCount() == 1 and runs.table.item(0, 1).text() == "finished"
    runs.table.selectRow(0)
    assert runs.loss_plot.point_count("tiny-run") == 3
    with qtbot.waitSignal(runs.rerun_requested):
        [b for b in runs.findChildren(type(page.export_button)) if b.text() == "Re-run config"][0].click()
    assert window.distill_page.form.config().steps == 3
