"""Live metric plots: one curve per series, growing arrays, redrawn from a timer (never per event)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer

COLORS = ["#2f6fde", "#e4572e", "#17a34a", "#9b59b6", "#f2a541", "#0e9aa7", "#c2185b", "#555555"]

pg.setConfigOptions(antialias=True, background="w", foreground="#333333")


class MetricPlot(pg.PlotWidget):
    """A plot of named series against the training step."""

    def __init__(self, title: str, y_label: str = "", log_y: bool = False, parent=None) -> None:
        super().__init__(parent=parent)
        self.setTitle(title, size="10pt")
        self.setLabel("bottom", "step")
        if y_label:
            self.setLabel("left", y_label)
        self.showGrid(x=True, y=True, alpha=0.25)
        self.setLogMode(y=log_y)
        self.addLegend(offset=(-10, 10))
        self.setMinimumHeight(170)
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._data: dict[str, tuple[list[float], list[float]]] = {}
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(250)  # a few frames per second is enough for a training curve
        self._timer.timeout.connect(self._redraw)
        self._timer.start()

    def add_point(self, series: str, step: float, value: float) -> None:
        if series not in self._curves:
            color = COLORS[len(self._curves) % len(COLORS)]
            curve = self.plot([], [], name=series, pen=pg.mkPen(color, width=2))
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
            self._curves[series] = curve
        xs, ys = self._data.setdefault(series, ([], []))
        xs.append(step)
        ys.append(value)
        self._dirty = True

    def set_series(self, series: str, steps, values) -> None:
        self._data.pop(series, None)
        for s, v in zip(steps, values):
            self.add_point(series, s, v)
        self._redraw()

    def clear_series(self) -> None:
        for curve in self._curves.values():
            self.removeItem(curve)
        self._curves.clear()
        self._data.clear()
        self.plotItem.legend.clear()

    def point_count(self, series: str) -> int:
        return len(self._data.get(series, ([], []))[0])

    def _redraw(self) -> None:
        if not self._dirty:
            return
        for name, (xs, ys) in self._data.items():
            self._curves[name].setData(np.asarray(xs), np.asarray(ys))
        self._dirty = False
