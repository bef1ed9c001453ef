"""The student's reply coloured by the real teacher's probability of each token."""

from PySide6.QtGui import QTextCursor

from slm_studio.app.chat_colouring import LEVEL_COLORS
from slm_studio.chat.scoring import agreement_level
from slm_studio.export.gguf import export_gguf
from tests.app.conftest import StallProbe
from tests.conftest import BUNDLED


def coloured_fragments(transcript):
    """(text, background, tooltip) of every scored piece of the transcript (paragraph breaks are not pieces)."""
    found = []
    block = transcript.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            fmt = fragment.charFormat()
            if fmt.toolTip():
                found.append((fragment.text(), fmt.background().color().name(), fmt.toolTip()))
            it += 1
        block = block.next()
    return found


def test_the_students_reply_is_coloured_by_the_teachers_probabilities(qtbot, window, tiny_teacher, tmp_path):
    student = export_gguf(tiny_teacher, tmp_path / "gguf").float_path
    page = window.chat_page
    window.sidebar.setCurrentRow(window.stack.indexOf(page))
    page.teacher.model.setCurrentText(BUNDLED)
    page.student.model.setCurrentText(str(student))
    page.max_tokens.setValue(16)
    page.temperature.setValue(0.0)
    page.prompt.setText("What is the capital of France?")
    assert page.colour.isChecked()
    with StallProbe() as probe:
        page.send_button.click()
        qtbot.waitUntil(lambda: not any(p.busy for p in page.panes), timeout=120_000)
    pane = page.student
    reply = pane.history[-1]["content"]
    fragments = coloured_fragments(pane.transcript)
    assert reply and "".join(text for text, _, _ in fragments) == reply.replace("\n", "")
    assert {colour for _, colour, _ in fragments} <= set(LEVEL_COLORS)
    assert all("teacher's probability" in tip and "first choice" in tip for _, _, tip in fragments)
    assert pane.legend.isVisible() and "high" in pane.legend.text()
    scores = [s for s in pane.scorer.score_reply(pane.session.llm, pane.session.last_prompt_tokens, reply)
              if s.text.replace("\n", "")]
    assert [colour for _, colour, _ in fragments] == [LEVEL_COLORS[agreement_level(s.teacher_prob)] for s in scores]
    assert len({colour for _, colour, _ in fragments}) > 1  # the real teacher expected some tokens and not others
    assert not coloured_fragments(page.teacher.transcript) and not page.teacher.legend.isVisible()
    assert "tokens/s" in pane.stats.text()
    print(f"longest event-loop stall during chat and scoring: {probe.longest_ms} ms")

    page.colour.setChecked(False)  # plain text when the user turns colouring off
    page.prompt.setText("And of Italy?")
    page.send_button.click()
    qtbot.waitUntil(lambda: not any(p.busy for p in page.panes), timeout=120_000)
    cursor = pane.transcript.textCursor()
    cursor.movePosition(QTextCursor.End)
    assert not cursor.charFormat().toolTip() and len(coloured_fragments(pane.transcript)) == len(fragments)
