"""The desktop app: the only package that imports Qt."""


def run_app(argv: list[str] | None = None) -> int:
    import os
    import sys

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                                                 or os.environ.get("QT_QPA_PLATFORM")):
        print("slm-studio: error: no display to open the app on; use the subcommands (slm-studio --help), "
              "or run it under xvfb-run", file=sys.stderr)
        return 2

    from PySide6.QtWidgets import QApplication

    from slm_studio.app.main_window import MainWindow
    from slm_studio.app.style import STYLESHEET

    app = QApplication.instance() or QApplication(argv or sys.argv)
    app.setApplicationName("SLM Studio")
    app.setStyleSheet(STYLESHEET)
    window = MainWindow()
    window.show()
    return app.exec()
