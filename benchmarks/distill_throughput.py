"""Student training throughput and peak memory: a plain reference loop against SLM Studio's trainer.

    .venv/bin/python benchmarks/distill_throughput.py --quick     # about 3 minutes
    .venv/bin/python benchmarks/distill_throughput.py             # the numbers quoted in RESULTS.md

All variants distill the bundled SmolLM2-135M-Instruct into the same 15-layer student on the same Python-docs
batches (4 x 128 tokens, T=2, alpha=0.5, AdamW 3e-4), each in a fresh subprocess so that its peak memory is its
own. (a) the reference is the loop a tutorial writes: the teacher runs every step, and the KL is a float32
softmax over the full vocabulary of full [batch, seq, vocab] logits. (b) SLM Studio's `distill()` with its
defaults (bf16 autocast where the CPU has it, bf16 optimizer moments, activation checkpointing, the chunked loss
computed in its forward pass) and the teacher cached once as its top 64 log-probabilities plus 256 tokens drawn
from the rest; and (c, not with --quick) the same with fp32 optimizer moments and no activation checkpointing,
to show what those two memory savings cost in speed. Peak memory is the resident-set high-water mark of the
training loop (reset just before it). The last line is `speedup=<x> memory_ratio=<y>` (ours over reference).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = {"quick": 8, "full": 40}
BATCH, SEQ, TEMPERATURE, ALPHA, LR, TOPK, TAIL = 4, 128, 2.0, 0.5, 3e-4, 64, 256


def reset_peak_memory() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: the RSS high-water mark restarts from now


def peak_memory_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def run_reference(steps: int) -> dict:
    import torch
    import torch.nn.functional as F

    from slm_studio.data.corpus import batch_indices, load_records, split_holdout, tokenize
    from slm_studio.models import loading, sources
    from slm_studio.models.student import StudentPlan, derive_student, evenly_spaced

    folder = loading.hf_folder(sources.resolve("SmolLM2-135M-Instruct"))
    teacher, tokenizer = loading.load_model(folder).eval(), loading.load_tokenizer(folder)
    student = derive_student(teacher, StudentPlan(evenly_spaced(30, 15))).train()
    train, _ = split_holdout(tokenize(load_records("python-docs"), tokenizer, SEQ), 0.05, 0)
    optimizer = torch.optim.AdamW(student.parameters(), lr=LR)
    reset_peak_memory()
    start = time.perf_counter()
    for step in range(steps):
        ids = train.input_ids[batch_indices(len(train), step * BATCH, BATCH, 0)]
        with torch.no_grad():
            teacher_logits = teacher(input_ids=ids).logits
        logits = student(input_ids=ids).logits
        kl = F.kl_div(F.log_softmax(logits[:, :-1] / TEMPERATURE, -1), F.softmax(teacher_logits[:, :-1] / TEMPERATURE, -1),
                      reduction="batchmean") / (SEQ - 1) * TEMPERATURE ** 2  # batchmean divides by batch only
        ce = F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
        (ALPHA * kl + (1 - ALPHA) * ce).backward()
        optimizer.step()
        optimizer.zero_grad()
    seconds = time.perf_counter() - start
    return {"tokens_per_s": steps * BATCH * SEQ / seconds, "peak_bytes": peak_memory_bytes(), "loss": float(kl)}


def run_ours(steps: int, optimizer_state: str, checkpointing: bool) -> dict:
    from slm_studio.config import DistillConfig
    from slm_studio.distill.trainer import distill

    config = DistillConfig(steps=steps, batch_size=BATCH, seq_len=SEQ, temperature=TEMPERATURE, alpha=ALPHA, lr=LR,
                           warmup_steps=0, min_lr_ratio=1.0, eval_every=10**6, eval_batches=1, checkpoint_every=10**6,
                           teacher_topk=TOPK, teacher_tail_samples=TAIL, optimizer_state=optimizer_state,
                           activation_checkpointing=checkpointing)
    seen = {}

    def on_event(event):
        if event.stage == "train" and event.message.endswith("starting"):
            reset_peak_memory()  # the training loop starts now
        if event.stage == "train" and event.metrics:
            seen.update(event.metrics, peak_bytes=peak_memory_bytes())

    with tempfile.TemporaryDirectory() as tmp:
        result = distill(config, Path(tmp) / "run", on_event=on_event)
    return {"tokens_per_s": seen["tokens_per_s"], "peak_bytes": seen["peak_bytes"], "loss": seen["kl"],
            "student_ppl": result.student_ppl}


def child(variant: str, steps: int) -> None:
    if variant == "reference":
        out = run_reference(steps)
    else:
        _, optimizer_state, checkpointing = variant.split(":")
        out = run_ours(steps, optimizer_state, checkpointing == "checkpointing")
    print("RESULT " + json.dumps(out))


def measure(variant: str, steps: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", variant, "--steps", str(steps)],
                          capture_output=True, text=True)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if not lines:
        sys.exit(f"{variant} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{STEPS['quick']} steps instead of {STEPS['full']}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.steps)
    steps = STEPS["quick" if args.quick else "full"]
    variants = {"reference": "reference", "ours": "ours:bf16:checkpointing"}
    if not args.quick:  # (c) caches the teacher again: too long for the 3-minute --quick run
        variants["ours, fp32 moments, no ckpt"] = "ours:fp32:none"
    print(f"{steps} steps of {BATCH} x {SEQ} tokens, 15-of-30-layer student of SmolLM2-135M-Instruct")
    results = {}
    for name, variant in variants.items():
        results[name] = r = measure(variant, steps)
        print(f"{name:<28} {r['tokens_per_s']:8.1f} student tokens/s   peak {r['peak_bytes'] / 2**20:7.0f} MiB   "
              f"last kl {r['loss']:.3f}")
    ours, ref = results["ours"], results["reference"]
    print(f"speedup={ours['tokens_per_s'] / ref['tokens_per_s']:.2f} "
          f"memory_ratio={ours['peak_bytes'] / ref['peak_bytes']:.2f}")


if __name__ == "__main__":
    main()
