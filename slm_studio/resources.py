"""Files shipped in the top-level resources/ folder (default prompts, icons, stylesheet)."""

from pathlib import Path

RESOURCES = Path(__file__).resolve().parent.parent / "resources"


def resource(name: str) -> Path:
    return RESOURCES / name
