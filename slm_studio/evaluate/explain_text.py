"""`slm-studio explain` as text: per temperature, teacher and student bars for the top tokens."""

from __future__ import annotations

from slm_studio.evaluate.soft_labels import Explanation, TemperatureView, visible

BAR_WIDTH = 24
EIGHTHS = " ▏▎▍▌▋▊▉"
DARK_KNOWLEDGE = ("The teacher's bars other than the hard label are its 'dark knowledge': which other tokens are "
                  "nearly right. A higher T flattens the distribution, so the student learns more from them "
                  "(and from the long tail of the vocabulary: the '(all others)' row).")


def bar(p: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of `width` characters for a probability, in eighths of a character."""
    eighths = round(max(0.0, min(1.0, p)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (EIGHTHS[part] if part else "")).ljust(width)


def _cell(p: float | None) -> str:
    return f"{bar(p)} {p * 100:5.1f}%" if p is not None else ""


def _label_width(views: list[TemperatureView]) -> int:
    return max(12, min(18, max(len(visible(row.text)) for view in views for row in view.rows) + 2))


def format_view(view: TemperatureView, width: int, with_student: bool) -> list[str]:
    spread = (f"teacher entropy {view.teacher_entropy:.2f} nats (as spread out as {view.effective_choices:.1f} "
              "equally likely tokens)")
    lines = [f"T = {view.temperature:g}   {spread}"]
    header = f"  {'token':<{width}} {'':2} {'teacher':<{BAR_WIDTH + 7}}"
    lines.append(header + (" student" if with_student else ""))
    for row in view.rows:
        mark = "◀ " if row.hard_label else "  "
        text = visible(row.text)[:width]
        lines.append(f"  {text:<{width}} {mark}{_cell(row.teacher)}" + (f"  {_cell(row.student)}" if with_student
                                                                         else ""))
    rest = f"  {'(all others)':<{width}}   {_cell(view.teacher_rest)}"
    lines.append(rest + (f"  {_cell(view.student_rest)}" if with_student else ""))
    if view.kl is not None:
        lines.append(f"  KL(teacher_T || student_T) = {view.kl:.4f} nats unscaled; x T^2 = {view.kl_scaled:.4f} "
                     "(the soft loss the trainer minimises at this T)")
    return lines


def format_explanation(e: Explanation) -> str:
    with_student = e.student is not None
    width = _label_width(e.views)
    how = "the prompt as a user turn in the chat template" if e.chat_template else "the raw prompt"
    tail = e.context[-90:]
    lines = [f"context ({how}): {'...' if len(e.context) > 90 else ''}{visible(tail)}",
             f"teacher: {e.teacher}" + (f"    student: {e.student}" if with_student else "    (no student)")]
    if e.train_temperature is not None:
        lines.append(f"this run distilled at T = {e.train_temperature:g}")
    source = ("the first token of the continuation" if e.hard_label_source == "continuation"
              else "no continuation given: the teacher's own top-1 stands in for it")
    lines.append(f"hard label ◀ {visible(e.hard_label_text)} ({source}): plain fine-tuning puts 100% on it and 0% "
                 "on everything else")
    for view in e.views:
        lines += ["", *format_view(view, width, with_student)]
    lines += ["", DARK_KNOWLEDGE]
    return "\n".join(line.rstrip() for line in lines)
