"""llama.cpp speed of several runs' students side by side, e.g. an unpruned, an unstructured-pruned and a
structured-pruned quick run: does pruning make the GGUF faster?

    .venv/bin/python benchmarks/pruned_speed.py runs/none runs/unstructured50 runs/structured30 [--threads 2]

Each run needs its GGUF files (`slm-studio export RUN --quant Q8_0 Q4_K_M` or `slm-studio eval RUN`). The files
are measured in turn, `--repeats` rounds, and the best round of each is printed (a busy machine only ever makes a
round slower). Last line: `structured_vs_unpruned=<x>` generation speed at each type, when runs named with
"structured" and without pruning are both given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from slm_studio.evaluate.speed import decode_tokens_per_s

TYPES = ["F16", "Q8_0", "Q4_K_M"]


def pruning_method(run: Path) -> str:
    path = run / "pruning.json"
    return json.loads(path.read_text())["method"] if path.exists() else "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    files = {(run, kind): run / "gguf" / f"student-{kind}.gguf" for run in args.runs for kind in TYPES}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise SystemExit(f"missing GGUF files (run slm-studio eval on those runs first): {', '.join(missing)}")
    best: dict = {}
    for _ in range(args.repeats):
        for key, path in files.items():
            speed = decode_tokens_per_s(path, args.tokens, args.threads).generation_tps
            best[key] = max(best.get(key, 0.0), speed)
    print(f"{'run':<40} {'pruning':<13} " + " ".join(f"{k + ' tok/s':>13}" for k in TYPES)
          + " " + " ".join(f"{k + ' MB':>10}" for k in TYPES))
    for run in args.runs:
        print(f"{str(run):<40} {pruning_method(run):<13} " + " ".join(f"{best[(run, k)]:13.1f}" for k in TYPES)
              + " " + " ".join(f"{files[(run, k)].stat().st_size / 1e6:10.1f}" for k in TYPES))
    dense = [r for r in args.runs if pruning_method(r) == "none"]
    structured = [r for r in args.runs if pruning_method(r) == "structured"]
    if dense and structured:
        print("structured_vs_unpruned=" + " ".join(
            f"{k}:{best[(structured[0], k)] / best[(dense[0], k)]:.2f}" for k in TYPES))


if __name__ == "__main__":
    main()
