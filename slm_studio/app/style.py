"""The app's stylesheet: quiet colours, one accent for primary actions."""

STYLESHEET = """
QListWidget#sidebar { background: #23272e; color: #e6e6e6; border: none; font-size: 14px; padding-top: 8px; }
QListWidget#sidebar::item { padding: 10px 14px; }
QListWidget#sidebar::item:selected { background: #2f6fde; color: white; }
QPushButton#primary { background: #2f6fde; color: white; border: none; padding: 6px 14px; border-radius: 4px; }
QPushButton#primary:disabled { background: #9db8e8; }
QGroupBox { font-weight: bold; margin-top: 10px; }
QGroupBox::title { subcontrol-origin: margin; left: 6px; padding: 0 3px; }
QLabel#stats { color: #555555; font-family: monospace; }
"""
