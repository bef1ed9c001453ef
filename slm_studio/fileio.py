"""Atomic writes: a crash or a full disk never leaves a half-written file where a good one stood."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from slm_studio.errors import Cancelled, UserError

ALMOST_FULL = 1 << 20  # bytes free below which a failed write is put down to a full disk


def _disk_full(exc: BaseException, target: Path) -> bool:
    """ENOSPC, or a native writer's own error that says so (safetensors: "os error 28") or that failed on a device
    with no room left (torch.save: "file write failed")."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    if "No space left on device" in str(exc) or f"os error {errno.ENOSPC})" in str(exc):
        return True
    try:
        return shutil.disk_usage(target.parent).free < ALMOST_FULL
    except OSError:
        return False


def _explain_write_error(exc: Exception, target: Path) -> Exception:
    if isinstance(exc, (UserError, Cancelled)):  # already a clear answer
        return exc
    if _disk_full(exc, target):
        return UserError(f"disk full while writing {target}; the previous files are kept")
    if isinstance(exc, OSError):
        return UserError(f"could not write {target}: {exc.strerror or exc}")
    return exc


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
    except Exception as exc:
        explained = _explain_write_error(exc, target)
        if explained is exc:
            raise
        raise explained from exc
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
    except Exception as exc:
        explained = _explain_write_error(exc, target)
        if explained is exc:
            raise
        raise explained from exc
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


def read_jsonl(target: Path) -> list[dict]:
    """The records of a JSONL file; a line cut short by a crash in the middle of an append is skipped."""
    records = []
    for line in Path(target).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
