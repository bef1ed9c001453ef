"""The main window: a sidebar of pages (Distill, Export, Chat, Runs), menus, shortcuts, persisted settings."""

from __future__ import annotations

import gc
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QSize
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QListWidget, QMainWindow, QMessageBox, QStackedWidget,
                               QWidget)

# The model libraries are imported here, on the main thread at start-up: imported lazily by a worker, their
# module initialisation holds the GIL for up to 150 ms at a time and the window stutters (measured).
import transformers.models.llama.modeling_llama  # noqa: F401
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401

import slm_studio
from slm_studio.app.chat_page import ChatPage
from slm_studio.app.dialogs import show_error
from slm_studio.app.distill_page import DistillPage
from slm_studio.app.evaluate_page import EvaluatePage
from slm_studio.app.explain_page import ExplainPage
from slm_studio.app.export_page import ExportPage
from slm_studio.app.runs_page import RunsPage
from slm_studio.config import DistillConfig
from slm_studio.errors import UserError

PAGES = ("Distill", "Export", "Chat", "Runs", "Explain", "Evaluate")


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings("SLM Studio", "SLM Studio")
        self.setWindowTitle("SLM Studio")
        self.distill_page, self.export_page = DistillPage(), ExportPage()
        self.chat_page, self.runs_page = ChatPage(), RunsPage()
        self.explain_page = ExplainPage()
        self.evaluate_page = EvaluatePage()
        self.sidebar = QListWidget()
        self.sidebar.addItems(PAGES)
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setFixedWidth(120)
        self.stack = QStackedWidget()
        for page in (self.distill_page, self.export_page, self.chat_page, self.runs_page, self.explain_page,
                     self.evaluate_page):
            self.stack.addWidget(page)
        self.sidebar.currentRowChanged.connect(self._on_sidebar_row_changed)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.sidebar)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self._build_menus()
        self._connect_pages()
        self.sidebar.setCurrentRow(0)
        self.statusBar().showMessage("Ready. Everything runs on this machine; nothing is uploaded.")
        self._restore()
        # The garbage collector's full passes hold the GIL: while a worker loads a tokenizer (100k+ JSON objects)
        # each pass froze the window for 30-160 ms (measured with the stall probe). Keep what the window built out
        # of those passes, and run them far less often.
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open config...", QKeySequence.Open, self.open_config)
        self._action(file_menu, "&Save config...", QKeySequence.Save, self.save_config)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", QKeySequence.Quit, self.close)
        run_menu = self.menuBar().addMenu("&Run")
        self._action(run_menu, "&Start distillation", QKeySequence("Ctrl+Return"),
                     self.distill_page.start_button.click)
        self._action(run_menu, "&Cancel", QKeySequence("Ctrl+."), self.distill_page.cancel)
        view_menu = self.menuBar().addMenu("&View")
        for i, name in enumerate(PAGES):
            self._action(view_menu, name, QKeySequence(f"Ctrl+{i + 1}"), lambda i=i: self.sidebar.setCurrentRow(i))
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&About SLM Studio", None, self.about)

    def _action(self, menu, text, shortcut, slot) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _connect_pages(self) -> None:
        for page in (self.distill_page, self.export_page, self.chat_page, self.explain_page, self.evaluate_page):
            page.failed.connect(self.show_error)
        self.distill_page.run_finished.connect(self._on_distill_page_run_finished)
        self.export_page.exported.connect(lambda _: self.chat_page.refresh_models())
        self.runs_page.rerun_requested.connect(self._on_runs_page_rerun_requested)

    # ---- actions
    def open_config(self, path: str | None = None) -> None:
        path = path or QFileDialog.getOpenFileName(self, "Open a run config", self._last_folder(),
                                                   "Run configs (*.toml)")[0]
        if not path:
            return
        try:
            self.distill_page.form.set_config(DistillConfig.load(Path(path)))
        except UserError as exc:
            self.show_error(str(exc), "")
            return
        self.settings.setValue("last_folder", str(Path(path).parent))
        self.sidebar.setCurrentRow(0)

    def save_config(self, path: str | None = None) -> None:
        path = path or QFileDialog.getSaveFileName(self, "Save the run config", self._last_folder() + "/run.toml",
                                                   "Run configs (*.toml)")[0]
        if path:
            self.distill_page.form.config().save(Path(path))
            self.settings.setValue("last_folder", str(Path(path).parent))
            self.statusBar().showMessage(f"Saved {path}", 5000)

    def about(self) -> None:
        QMessageBox.about(self, "About SLM Studio",
                          f"<b>SLM Studio {slm_studio.__version__}</b><p>Point-and-click knowledge distillation "
                          "on your own workstation. Teachers, students, data and chats never leave it.</p>")

    def show_error(self, message: str, details: str = "") -> None:
        self.statusBar().showMessage(message, 10_000)
        self.error_dialog = show_error(self, message, details)

    # ---- slots
    def _on_sidebar_row_changed(self, row: int) -> None:
        self.stack.setCurrentIndex(row)
        if PAGES[row] == "Runs":
            self.runs_page.refresh()
        elif PAGES[row] == "Export":
            self.export_page.refresh()
        elif PAGES[row] == "Explain":
            self.explain_page.refresh()
        elif PAGES[row] == "Evaluate":
            self.evaluate_page.refresh()

    def _on_distill_page_run_finished(self, result) -> None:
        self.statusBar().showMessage(f"Distillation finished: {result.run_dir}", 10_000)
        self.export_page.refresh()
        self.export_page.run.setCurrentText(str(result.run_dir))

    def _on_runs_page_rerun_requested(self, config: DistillConfig) -> None:
        self.distill_page.form.set_config(config)
        self.sidebar.setCurrentRow(0)

    # ---- persistence and closing
    def _last_folder(self) -> str:
        return str(self.settings.value("last_folder", str(Path.cwd())))

    def _restore(self) -> None:
        geometry = self.settings.value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            self.resize(QSize(1360, 860))
        form = self.settings.value("last_form")
        if form:
            try:
                import tomllib

                self.distill_page.form.set_config(DistillConfig.from_dict(tomllib.loads(form)))
            except (UserError, ValueError):
                pass  # a form saved by another version: start from the defaults

    def _save(self) -> None:
        import tomli_w

        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("last_form", tomli_w.dumps(self.distill_page.form.config().to_dict()))

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.distill_page.running:
            answer = QMessageBox.question(self, "Stop the distillation?", "A distillation is running. Stop it "
                                          "(a checkpoint is kept, Resume continues it) and quit?")
            if answer != QMessageBox.Yes:
                event.ignore()
                return
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Stop every worker cleanly and remember the settings."""
        self._save()
        self.distill_page.cancel()
        self.chat_page.stop()
        self.distill_page.wait()
        self.evaluate_page.cancel()
        for thread in (self.export_page.thread, self.explain_page.thread, self.evaluate_page.thread,
                       *(p.thread for p in self.chat_page.panes)):
            if thread is not None:
                thread.wait(60_000)
