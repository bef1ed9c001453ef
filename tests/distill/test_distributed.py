"""`slm-studio distill` under torchrun: two CPU processes over gloo, launched the way a user would."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from slm_studio.config import DistillConfig
from slm_studio.distill.trainer import distill

AUDITED_CLI = Path(__file__).with_name("audited_cli.py")
COMPARED = ("loss", "kl", "ce", "grad_norm", "lr")


def torchrun(*args: str, processes: int = 2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               str(AUDITED_CLI), *args]
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
                          check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})


def rank_lines(output: str) -> dict[int, tuple[int, str]]:
    """rank -> (steps, weights digest), from the line each process prints at the end."""
    found = re.findall(r"rank (\d+)/2: (\d+) steps, weights sha256 ([0-9a-f]+)", output)
    return {int(rank): (int(steps), digest) for rank, steps, digest in found}


def audit(output: str) -> dict[int, int]:
    """rank -> how many paths it changed under the run directory."""
    found = re.findall(r"audit: rank (\d+) changed (\d+) paths", output)
    return {int(rank): int(count) for rank, count in found}


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def small_config(tmp: Path, teacher: str, topics: int = 10, **changes) -> DistillConfig:
    from pydoc_data.topics import topics as docs

    corpus = tmp / "corpus.txt"
    corpus.write_text("\n\n".join(text for _, text in sorted(docs.items())[:topics]))  # 10 topics: 39k characters
    prompts = tmp / "prompts.txt"
    prompts.write_text("What is a list?\nName a prime.\nWhy sort?\n")
    # seq_len 48 leaves room for the teacher's answers after the chat template's system prompt
    config = DistillConfig(teacher=teacher, student_layers=2, steps=3, batch_size=2, seq_len=48, warmup_steps=2,
                           eval_every=3, eval_batches=2, checkpoint_every=3, lr=1e-3, precision="fp32",
                           data=[str(corpus)], teacher_prompts=str(prompts), generate_max_tokens=6, threads=1)
    for name, value in changes.items():
        setattr(config, name, value)
    config.save(tmp / "config.toml")
    return config


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, tiny_teacher):
    """A fresh 3-step run on 2 processes, then --resume to 6 steps on 2 processes; the student pruned first (by
    magnitude, so that a 1-process run with another batch size prunes alike)."""
    tmp = tmp_path_factory.mktemp("ddp")
    config = small_config(tmp, str(tiny_teacher), prune="unstructured", prune_score="magnitude", sparsity=0.3)
    run = tmp / "run"
    fresh = torchrun("distill", "--config", str(tmp / "config.toml"), "--out", str(run))
    assert fresh.returncode == 0, fresh.stdout[-3000:]
    resumed = torchrun("distill", "--resume", str(run), "--steps", "6")
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    return config, run, fresh.stdout, resumed.stdout


def test_both_processes_step_with_identical_weights(two_process_run):
    _, run, fresh, resumed = two_process_run
    for output, steps in ((fresh, 3), (resumed, 6)):
        ranks = rank_lines(output)
        assert sorted(ranks) == [0, 1], output[-2000:]
        assert ranks[0][0] == ranks[1][0] == steps
        assert ranks[0][1] == ranks[1][1]  # gradients were averaged: both copies of the student are one
    rows = metrics(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(r["loss"]) for r in rows)


def test_only_rank_0_writes_the_run_directory(two_process_run):
    _, run, fresh, resumed = two_process_run
    for output in (fresh, resumed):
        changes = audit(output)
        assert changes[0] > 0 and changes[1] == 0, output[-2000:]
    assert (run / "student" / "model.safetensors").exists() and (run / "summary.json").exists()
    assert len((run / "teacher_answers.jsonl").read_text().splitlines()) == 3
    assert (run / "pruning_masks.safetensors").exists() and (run / "pruning.json").exists()
    assert "2 processes over gloo" in fresh
    assert fresh.count("held-out perplexity:") == 1  # rank 0 alone prints the summary


def test_two_processes_equal_one_process_with_twice_the_batch(two_process_run, tmp_path):
    config, run, _, _ = two_process_run
    threads = torch.get_num_threads()
    try:
        config.batch_size *= 2
        distill(config, tmp_path / "one")
        config.steps = 6
        distill(config, tmp_path / "one", resume=True)
    finally:
        torch.set_num_threads(threads)  # the config's threads=1 must not slow the rest of the suite
    assert [r["step"] for r in metrics(tmp_path / "one")] == [1, 2, 3, 4, 5, 6]
    for one, two in zip(metrics(tmp_path / "one"), metrics(run)):
        for key in COMPARED:
            assert one[key] == pytest.approx(two[key], rel=1e-4, abs=1e-6), (one["step"], key)
    w1 = load_file(tmp_path / "one" / "student" / "model.safetensors")
    w2 = load_file(run / "student" / "model.safetensors")
    for name in w1:  # bf16 optimizer moments: a gradient differing by 1e-7 can round a moment the other way
        torch.testing.assert_close(w1[name], w2[name], rtol=1e-4, atol=5e-5)


def test_a_refused_setting_stops_every_process_without_a_hang(tmp_path, tiny_teacher):
    small_config(tmp_path, str(tiny_teacher))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("precious")
    result = torchrun("distill", "--config", str(tmp_path / "config.toml"), "--out", str(busy))
    assert result.returncode != 0
    assert "already holds files" in result.stdout  # before the processes meet, so none waits for another
    assert [p.name for p in busy.iterdir()] == ["keep.txt"] and (busy / "keep.txt").read_text() == "precious"


@pytest.mark.slow
def test_two_processes_distill_the_real_teacher_from_a_shared_top_k_cache(tmp_path, teacher_folder):
    small_config(tmp_path, str(teacher_folder), topics=2, steps=2, batch_size=1, teacher_topk=8, teacher_prompts="")
    result = torchrun("distill", "--config", str(tmp_path / "config.toml"), "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stdout[-3000:]
    ranks = rank_lines(result.stdout)
    assert ranks[0] == ranks[1] and ranks[0][0] == 2
    assert audit(result.stdout)[1] == 0 and (tmp_path / "run" / "teacher_topk.safetensors").exists()
    assert all(math.isfinite(r["loss"]) for r in metrics(tmp_path / "run"))
