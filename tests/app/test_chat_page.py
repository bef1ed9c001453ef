"""The Chat page with real GGUF files: the bundled teacher beside an exported student."""

from slm_studio.export.gguf import export_gguf
from tests.app.conftest import StallProbe
from tests.conftest import BUNDLED


def test_one_prompt_streams_into_both_panes_with_stats(qtbot, window, tiny_teacher, tmp_path):
    student = export_gguf(tiny_teacher, tmp_path / "gguf").float_path
    page = window.chat_page
    page.teacher.model.setCurrentText(BUNDLED)
    page.student.model.setCurrentText(str(student))
    page.max_tokens.setValue(24)
    page.temperature.setValue(0.0)
    page.prompt.setText("What is the capital of France?")
    with StallProbe() as probe:
        page.send_button.click()
        assert not page.send_button.isEnabled() and page.stop_button.isEnabled()
        qtbot.waitUntil(lambda: not any(p.busy for p in page.panes), timeout=120_000)
    for pane in page.panes:
        assert "tokens/s" in pane.stats.text() and "first token" in pane.stats.text()
        assert [m["role"] for m in pane.history] == ["user", "assistant"] and pane.history[1]["content"]
    assert "France" in page.teacher.transcript.toPlainText()
    print(f"longest event-loop stall during chat: {probe.longest_ms} ms")
    assert probe.responsive()
    page.clear_button.click()
    assert page.teacher.history == [] and page.teacher.transcript.toPlainText() == ""


def test_a_missing_model_shows_an_error_dialog(qtbot, window, tmp_path):
    page = window.chat_page
    page.teacher.model.setCurrentText(str(tmp_path / "nowhere.gguf"))
    page.student.model.setCurrentText(str(tmp_path / "nowhere.gguf"))
    page.prompt.setText("hi")
    page.send_button.click()
    qtbot.waitUntil(lambda: getattr(window, "error_dialog", None) is not None and window.error_dialog.isVisible(),
                    timeout=30_000)
    qtbot.waitUntil(lambda: not any(p.busy for p in page.panes), timeout=30_000)
    assert "not" in window.error_dialog.text()
