"""The Explain page: teacher vs student bars at T = 1, 2, 4 from tiny real models, on the worker thread."""

import shutil

import numpy as np

from slm_studio.config import DistillConfig
from tests.app.conftest import StallProbe
from tests.conftest import make_tiny_llama


def test_a_run_is_explained_in_three_charts_with_the_hard_label_marked(qtbot, window, tiny_teacher, tokenizer,
                                                                        tmp_path):
    run = tmp_path / "runs" / "tiny-run"
    run.mkdir(parents=True)
    DistillConfig(teacher=str(tiny_teacher)).save(run / "run.toml")
    make_tiny_llama(run / "student", tokenizer, layers=2, seed=5, initializer_range=0.2)
    window.sidebar.setCurrentRow(window.stack.indexOf(window.explain_page))
    page = window.explain_page
    assert window.stack.currentWidget() is page and window.sidebar.currentItem().text() == "Explain"
    assert str(run) in [page.student.itemText(i) for i in range(page.student.count())]  # the run picker found it
    page.student.setCurrentText(str(run))
    page.prompt.setPlainText("The capital of France is")
    page.continuation.setText(" Paris")
    page.raw.setChecked(True)
    page.top.setValue(5)
    with StallProbe() as loading, qtbot.waitSignal(page.explained, timeout=120_000):
        page.explain_button.click()
        assert not page.explain_button.isEnabled()
    qtbot.waitUntil(lambda: not page.running, timeout=10_000)
    assert page.explain_button.isEnabled()
    with StallProbe() as probe, qtbot.waitSignal(page.explained, timeout=60_000):  # models loaded: the common case
        page.explain_button.click()
    qtbot.waitUntil(lambda: not page.running, timeout=10_000)
    e = page.result
    assert e.student == str(run / "student") and e.hard_label_source == "continuation"
    for chart, view, t in zip(page.charts, e.views, (1, 2, 4)):
        title = chart.plotItem.titleLabel.text
        assert f"T = {t}" in title and "KL(teacher‖student)" in title and f"{view.kl:.3f}" in title
        heights = chart.teacher_bars.opts["height"]
        assert np.allclose(heights, [r.teacher * 100 for r in view.rows])
        assert np.allclose(chart.student_bars.opts["height"], [r.student * 100 for r in view.rows])
        assert "★ ␣Paris" in chart.tick_labels and len(chart.tick_labels) == len(view.rows) >= 5
    assert "␣Paris" in page.summary.text() and "plain fine-tuning puts 100%" in page.summary.text()
    print(f"longest event-loop stall: {loading.longest_ms} ms loading the models, {probe.longest_ms} ms after")
    # ~50 ms on a quiet machine with the real 135M teacher and student; this 2-core machine is often shared, so
    # the bound only catches model work on the UI thread
    assert probe.longest_ms < 500


def test_teacher_alone_and_a_bad_student_shows_an_error(qtbot, window, tiny_teacher, tmp_path):
    page = window.explain_page
    page.teacher.setCurrentText(str(tiny_teacher))
    page.student.setCurrentText("(teacher only)")
    with qtbot.waitSignal(page.explained, timeout=60_000):
        page.explain_button.click()
    qtbot.waitUntil(lambda: not page.running, timeout=10_000)
    assert page.result.student is None and page.charts[0].student_bars is None
    assert "KL" not in page.charts[0].plotItem.titleLabel.text
    assert "<|im_start|>user" in page.result.context  # the chat template is the default

    shutil.copytree(tiny_teacher, tmp_path / "not-a-run")
    (tmp_path / "not-a-run" / "config.json").unlink()
    page.student.setCurrentText(str(tmp_path / "not-a-run"))
    page.explain_button.click()
    qtbot.waitUntil(lambda: getattr(window, "error_dialog", None) is not None and window.error_dialog.isVisible(),
                    timeout=30_000)
    qtbot.waitUntil(lambda: not page.running, timeout=10_000)
    assert "neither a run directory" in window.error_dialog.text()
