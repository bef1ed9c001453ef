"""Render the app icon's PNG from its hand-written SVG (run after editing resources/slm-studio.svg):

    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/render_icon.py
"""

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

RESOURCES = Path(__file__).resolve().parent.parent / "resources"


def render(size: int = 256) -> Path:
    renderer = QSvgRenderer(str(RESOURCES / "slm-studio.svg"))
    if not renderer.isValid():
        sys.exit("resources/slm-studio.svg is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    target = RESOURCES / "slm-studio.png"
    image.save(str(target))
    return target


if __name__ == "__main__":
    app = QGuiApplication(sys.argv)
    print(render())
