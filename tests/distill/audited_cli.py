"""`slm-studio` with a record of what this process changes in the run directory, for the multi-process tests.

    torchrun --standalone --nproc_per_node 2 tests/distill/audited_cli.py distill --out RUN_DIR ...

A Python audit hook notes every write-mode open, mkdir, rename and removal under the run directory (--out or
--resume); at exit the process prints one line: "audit: rank R changed N paths under the run directory: ...".
Files written by native code (safetensors) are covered too: they are written into temporary paths that Python
opened or created first.
"""

from __future__ import annotations

import atexit
import os
import sys

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
CHANGING_EVENTS = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.truncate", "shutil.rmtree", "os.symlink",
                   "os.link", "os.chmod"}


def run_dir_from(argv: list[str]) -> str:
    for flag in ("--out", "--resume"):
        if flag in argv:
            return os.path.realpath(argv[argv.index(flag) + 1])
    raise SystemExit("audited_cli: give --out or --resume")


def main() -> int:
    run_dir = run_dir_from(sys.argv)
    changed: set[str] = set()

    def inside(path) -> bool:
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False  # a file descriptor or something else that is no path
        return real == run_dir or real.startswith(run_dir + os.sep)

    def hook(event: str, args: tuple) -> None:
        if event == "open" and args and args[0] is not None:
            mode, flags = args[1], args[2]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE_FLAGS)
            if writes and inside(args[0]):
                changed.add(os.fsdecode(args[0]))
        elif event in CHANGING_EVENTS and args and inside(args[0]):
            changed.add(os.fsdecode(args[0]))

    sys.addaudithook(hook)
    rank = os.environ.get("RANK", "0")
    atexit.register(lambda: print(f"audit: rank {rank} changed {len(changed)} paths under the run directory: "
                                  f"{sorted(changed)[:5]}", file=sys.stderr, flush=True))
    from slm_studio.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
