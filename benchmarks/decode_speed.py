"""llama.cpp decode speed of the teacher and its half-depth student at F16, Q8_0 and Q4_K_M, beside the
memory-bandwidth bound (model bytes per token over a measured copy bandwidth).

    .venv/bin/python benchmarks/decode_speed.py [--run RUN_DIR] [--tokens 128] [--threads 2]

Without --run, the student is the bundled teacher with every other layer kept (15 of 30; speed does not depend on
training). Files are written under --work (default: a cache folder) and reused. Last line:
`student_vs_teacher=<x> bandwidth_fraction=<y>` at Q4_K_M.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from slm_studio.evaluate.speed import decode_tokens_per_s
from slm_studio.export.gguf import export_gguf
from slm_studio.models import loading, sources
from slm_studio.models.student import StudentPlan, derive_student, evenly_spaced

QUANTS = ["Q8_0", "Q4_K_M"]


def copy_bandwidth(megabytes: int = 512, repeats: int = 5) -> float:
    """Bytes per second of a large memory copy (read + write both count)."""
    src = np.ones(megabytes * 2**20 // 8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best


def exported(folder: Path, out: Path) -> dict[str, Path]:
    if all((out / f"{folder.name}-{q}.gguf").exists() for q in ["F16", *QUANTS]):
        return {q: out / f"{folder.name}-{q}.gguf" for q in ["F16", *QUANTS]}
    return export_gguf(folder, out, quants=QUANTS).files


def student_folder(args, teacher_folder: Path) -> Path:
    if args.run:
        return Path(args.run) / "student"
    folder = args.work / "student"
    if not (folder / "config.json").exists():
        teacher = loading.load_model(teacher_folder)
        student = derive_student(teacher, StudentPlan(evenly_spaced(teacher.config.num_hidden_layers, 15)))
        student.save_pretrained(folder)
        loading.load_tokenizer(teacher_folder).save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a finished run directory whose student is measured")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--work", type=Path, default=loading.cache_root() / "benchmarks" / "decode")
    args = parser.parse_args()

    teacher_folder = loading.hf_folder(sources.resolve("SmolLM2-135M-Instruct"))
    files = {"teacher": exported(teacher_folder, args.work / "teacher"),
             "student": exported(student_folder(args, teacher_folder), args.work / "student-gguf")}
    bandwidth = copy_bandwidth()
    print(f"machine: {os.cpu_count()} CPUs, copy bandwidth {bandwidth / 1e9:.1f} GB/s; {args.threads} threads, "
          f"{args.tokens} generated tokens")
    print(f"{'model':<8} {'type':<7} {'size':>9} {'prompt tok/s':>13} {'gen tok/s':>10} {'bound tok/s':>12} "
          f"{'of bound':>9}")
    results = {}
    for quant in ["F16", *QUANTS]:
        for model in ("teacher", "student"):
            path = files[model][quant]
            size = path.stat().st_size
            prompt_tps, gen_tps = decode_tokens_per_s(path, args.tokens, args.threads)
            bound = bandwidth / size
            results[model, quant] = (gen_tps, bound)
            print(f"{model:<8} {quant:<7} {size / 1e6:>7.1f}MB {prompt_tps:>13.0f} {gen_tps:>10.1f} {bound:>12.0f} "
                  f"{gen_tps / bound:>8.0%}")
    ratio = results["student", "Q4_K_M"][0] / results["teacher", "Q4_K_M"][0]
    fraction = results["student", "Q4_K_M"][0] / results["student", "Q4_K_M"][1]
    print(f"student_vs_teacher={ratio:.2f} bandwidth_fraction={fraction:.2f}")


if __name__ == "__main__":
    main()
