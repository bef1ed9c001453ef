"""The Pareto plot of an evaluation as a PNG, drawn with QPainter on a QImage: safe on a worker thread, and
usable from the CLI without a display (an offscreen QGuiApplication is made when none exists).

Same data as the live plot on the Evaluate page: held-out perplexity (log axis) against file size (MB).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QGuiApplication,
    QImage,
    QPainter,
    QPainterPath,
    QPen,
)
from PySide6.QtWidgets import QApplication

from slm_studio.evaluate.report import format_ppl
from slm_studio.evaluate.result import EvalResult
from slm_studio.fileio import atomic_path

COLORS = {"teacher": QColor("#e4572e"), "student": QColor("#2f6fde")}
WIDTH, HEIGHT = 1000, 640
MARGIN = {"left": 90, "right": 40, "top": 60, "bottom": 70}
_app = None


def save_pareto_png(result: EvalResult, path: Path) -> None:
    _ensure_gui()
    image = QImage(WIDTH, HEIGHT, QImage.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.Antialiasing)
    try:
        _draw(painter, result)
    finally:
        painter.end()
    with atomic_path(path) as tmp:
        if not image.save(str(tmp), "PNG"):
            raise OSError(f"Qt could not write {path}")


def _ensure_gui() -> None:
    """Fonts need an application object; the CLI has none, and maybe no display either. A QApplication (not
    a bare QGuiApplication), so that windows can still be made later in the same process."""
    global _app
    if QGuiApplication.instance() is None:
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        _app = QApplication(["slm-studio"])


class _Axes:
    """Data -> pixel: x linear in MB, y logarithmic in perplexity."""

    def __init__(self, xs: list[float], ys: list[float]) -> None:
        self.x0, self.x1 = 0.0, max(xs) * 1.3  # room for the labels right of the points
        low, high = math.log10(min(ys)), math.log10(max(ys))
        pad = max(0.08, (high - low) * 0.1)
        self.y0, self.y1 = low - pad, high + pad
        self.box = QRectF(MARGIN["left"], MARGIN["top"], WIDTH - MARGIN["left"] - MARGIN["right"],
                          HEIGHT - MARGIN["top"] - MARGIN["bottom"])

    def point(self, mb: float, ppl: float) -> QPointF:
        fx = (mb - self.x0) / (self.x1 - self.x0)
        fy = (math.log10(ppl) - self.y0) / (self.y1 - self.y0)
        return QPointF(self.box.left() + fx * self.box.width(), self.box.bottom() - fy * self.box.height())


def _draw(painter: QPainter, result: EvalResult) -> None:
    points = result.points
    axes = _Axes([p.size_mb for p in points], [p.perplexity for p in points])
    _draw_frame(painter, axes)
    front = [p for label in result.front for p in points if p.label == label]
    if len(front) > 1:
        path = QPainterPath(axes.point(front[0].size_mb, front[0].perplexity))
        for p in front[1:]:
            path.lineTo(axes.point(p.size_mb, p.perplexity))
        painter.setPen(QPen(QColor("#17a34a"), 2, Qt.DashLine))
        painter.drawPath(path)
    painter.setFont(QFont("DejaVu Sans", 9))
    placed: list[QRectF] = []
    for p in sorted(points, key=lambda p: axes.point(p.size_mb, p.perplexity).y()):
        at = axes.point(p.size_mb, p.perplexity)
        painter.setPen(QPen(QColor("#222222"), 2 if p.label in result.front else 0.5))
        painter.setBrush(COLORS.get(p.model, QColor("#555555")))
        painter.drawEllipse(at, 6, 6)
        painter.setPen(QColor("#222222"))
        text = f"{p.label}  {format_ppl(p.perplexity)}"
        box = _free_spot(QRectF(at.x() + 9, at.y() - 20, painter.fontMetrics().horizontalAdvance(text), 15), placed)
        painter.drawText(box, Qt.AlignLeft | Qt.AlignVCenter, text)
    _draw_legend(painter)


def _free_spot(box: QRectF, placed: list[QRectF]) -> QRectF:
    """The label's box moved down in small steps until it overlaps no label drawn before it."""
    while any(box.intersects(other) for other in placed):
        box.translate(0, 4)
    placed.append(box)
    return box


def _draw_frame(painter: QPainter, axes: _Axes) -> None:
    box = axes.box
    painter.setFont(QFont("DejaVu Sans", 9))
    for mb in _linear_ticks(axes.x0, axes.x1):
        x = axes.point(mb, 10 ** axes.y0).x()
        painter.setPen(QPen(QColor("#e5e5e5"), 1))
        painter.drawLine(QPointF(x, box.top()), QPointF(x, box.bottom()))
        painter.setPen(QColor("#333333"))
        painter.drawText(QRectF(x - 40, box.bottom() + 6, 80, 18), Qt.AlignHCenter, f"{mb:g}")
    for ppl in _log_ticks(10 ** axes.y0, 10 ** axes.y1):
        y = axes.point(axes.x0, ppl).y()
        painter.setPen(QPen(QColor("#e5e5e5"), 1))
        painter.drawLine(QPointF(box.left(), y), QPointF(box.right(), y))
        painter.setPen(QColor("#333333"))
        painter.drawText(QRectF(box.left() - 86, y - 9, 80, 18), Qt.AlignRight | Qt.AlignVCenter, f"{ppl:g}")
    painter.setPen(QPen(QColor("#333333"), 1))
    painter.setBrush(Qt.NoBrush)
    painter.drawRect(box)
    painter.setFont(QFont("DejaVu Sans", 10))
    painter.drawText(QRectF(box.left(), box.bottom() + 30, box.width(), 20), Qt.AlignHCenter, "GGUF file size (MB)")
    painter.save()
    painter.translate(18, box.center().y())
    painter.rotate(-90)
    painter.drawText(QRectF(-150, -10, 300, 20), Qt.AlignHCenter, "held-out perplexity, llama.cpp (log scale)")
    painter.restore()
    painter.setFont(QFont("DejaVu Sans", 12, QFont.Bold))
    painter.drawText(QRectF(0, 14, WIDTH, 26), Qt.AlignHCenter, "Compression vs quality: teacher and student GGUFs")


def _draw_legend(painter: QPainter) -> None:
    x, y = WIDTH - MARGIN["right"] - 190, MARGIN["top"] + 12
    painter.setFont(QFont("DejaVu Sans", 9))
    for i, (name, color) in enumerate(COLORS.items()):
        painter.setPen(QPen(QColor("#222222"), 0.5))
        painter.setBrush(color)
        painter.drawEllipse(QPointF(x, y + 18 * i), 5, 5)
        painter.setPen(QColor("#222222"))
        painter.drawText(QPointF(x + 12, y + 18 * i + 4), name)
    painter.setPen(QPen(QColor("#17a34a"), 2, Qt.DashLine))
    painter.drawLine(QPointF(x - 6, y + 36), QPointF(x + 6, y + 36))
    painter.setPen(QColor("#222222"))
    painter.drawText(QPointF(x + 12, y + 40), "Pareto front")


def _linear_ticks(low: float, high: float) -> list[float]:
    raw = (high - low) / 6
    step = min((m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)), key=lambda s: abs(s - raw))
    return [i * step for i in range(math.ceil(low / step), math.floor(high / step) + 1)]


def _log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 marks per decade over a wide range; evenly spaced round numbers within a narrow one."""
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    marks = (1, 2, 5) if math.log10(high / low) < 3 else (1,)
    ticks = [t for t in (m * 10 ** d for d in decades for m in marks) if low <= t <= high]
    return ticks if len(ticks) >= 3 else [t for t in _linear_ticks(low, high) if t > 0]
