"""The desktop app: the only package that imports Qt."""


def run_app(argv: list[str] | None = None) -> int:
    import sys

    from PySide6.QtWidgets import QApplication

    from slm_studio.app.main_window import MainWindow
    from slm_studio.app.style import STYLESHEET

    app = QApplication.instance() or QApplication(argv or sys.argv)
    app.setApplicationName("SLM Studio")
    app.setStyleSheet(STYLESHEET)
    window = MainWindow()
    window.show()
    return app.exec()
