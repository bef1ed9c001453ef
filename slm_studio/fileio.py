"""Atomic writes: a crash or a full disk never leaves a half-written file where a good one stood."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from slm_studio.errors import UserError


def _explain_os_error(exc: OSError, target: Path) -> UserError:
    if exc.errno == errno.ENOSPC:
        return UserError(f"disk full while writing {target}; the previous files are kept")
    return UserError(f"could not write {target}: {exc.strerror or exc}")


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it is renamed over `target`, else removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        raise _explain_os_error(exc, target) from exc
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success it replaces `target` as a whole."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        old = target.with_name(f".{target.name}.old")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise _explain_os_error(exc, target) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: Path, data: object) -> None:
    write_text(target, json.dumps(data, indent=2) + "\n")


def append_jsonl(target: Path, record: dict) -> None:
    """One JSON object a line; appends are small enough that a crash loses at most the last line."""
    with open(target, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
