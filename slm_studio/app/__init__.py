"""The desktop app: the only package that imports Qt."""


def run_app(argv: list[str] | None = None) -> int:
    import os
    import sys

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                                                 or os.environ.get("QT_QPA_PLATFORM")):
        print("slm-studio: error: no display to open the app on; use the subcommands (slm-studio --help), "
              "or run it under xvfb-run", file=sys.stderr)
        return 2

    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from slm_studio.app.main_window import MainWindow
    from slm_studio.app.style import STYLESHEET
    from slm_studio.resources import resource

    app = QApplication.instance() or QApplication(argv or sys.argv)
    app.setApplicationName("SLM Studio")
    app.setDesktopFileName("org.slmstudio.SlmStudio")
    app.setWindowIcon(QIcon(str(resource("slm-studio.png"))))
    app.setStyleSheet(STYLESHEET)
    window = MainWindow()
    window.show()
    if os.environ.get("SLM_STUDIO_QUIT_AFTER_START"):  # smoke test of an install or a bundle
        QTimer.singleShot(0, lambda: _report_started_and_quit(app, window))
    return app.exec()


def _report_started_and_quit(app, window) -> None:
    import slm_studio

    print(f"{window.windowTitle()} {slm_studio.__version__} started", flush=True)
    app.quit()
