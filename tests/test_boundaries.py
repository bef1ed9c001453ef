"""The UI boundary is enforced: only slm_studio/app/ may import Qt or pyqtgraph."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "slm_studio"
QT = ("PySide6", "pyqtgraph", "shiboken6")


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_only_the_app_package_imports_qt():
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "app" not in p.relative_to(PACKAGE).parts
                 and any(name.split(".")[0] in QT for name in _imports(p))]
    assert offenders == []
