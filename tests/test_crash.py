"""Crashes, cancels and full disks: a run survives kill -9, a cancelled export leaves nothing half-written, and
a full disk gives a clear message while the previous files stay whole.

Ctrl-C/Cancel and exact resume are tested in tests/distill/test_trainer.py and tests/app/test_distill_page.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from slm_studio.config import DistillConfig
from slm_studio.distill.checkpoint import list_checkpoints
from slm_studio.distill.trainer import distill
from slm_studio.errors import Cancelled, UserError
from slm_studio.events import CancelToken
from slm_studio.fileio import read_jsonl

REPO = Path(__file__).resolve().parent.parent


def _crash_config(tiny_teacher) -> DistillConfig:
    return DistillConfig(teacher=str(tiny_teacher), student_layers=2, steps=9, batch_size=2, seq_len=32,
                         warmup_steps=2, eval_every=3, eval_batches=1, checkpoint_every=3, lr=1e-3)


def _cli_in_a_process(kill: tuple[str, int] | None, *argv) -> subprocess.CompletedProcess:
    runner = ["-m", "tests.crash_runner", kill[0], str(kill[1]), "--"] if kill else ["-m", "slm_studio"]
    return subprocess.run([sys.executable, *runner, *map(str, argv)], cwd=REPO, capture_output=True, text=True,
                          check=False, timeout=300)


def _steps_logged(run: Path) -> list[int]:
    return [row["step"] for row in read_jsonl(run / "metrics.jsonl")]


def _checkpoint_names(run: Path) -> list[str]:
    return [p.name for p in list_checkpoints(run)]


@pytest.mark.slow  # three CLI processes (each imports torch and transformers) and one more run
def test_kill_9_mid_step_and_mid_checkpoint_then_resume_finishes_intact(tmp_path, tiny_teacher):
    config = _crash_config(tiny_teacher)
    config.save(tmp_path / "crash.toml")
    run = tmp_path / "run"

    # killed inside step 5: the checkpoint of step 3 is the last good one
    killed = _cli_in_a_process(("mid-step", 5), "distill", "--config", tmp_path / "crash.toml", "--out", run)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _checkpoint_names(run) == ["step-000003"] and _steps_logged(run) == [1, 2, 3, 4]
    assert not (run / "student").exists()

    # resumed, then killed while checkpoint 6 is half-written: it is never listed as a checkpoint
    killed = _cli_in_a_process(("in-checkpoint", 6), "distill", "--resume", run)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    partial = list((run / "checkpoints").glob(".step-000006*"))
    assert partial and (partial[0] / "trainer.pt").exists() and not (partial[0] / "state.json").exists()
    assert _checkpoint_names(run) == ["step-000003"] and _steps_logged(run) == [1, 2, 3, 4, 5, 6]
    with open(run / "metrics.jsonl", "a") as f:  # and as if a kill had also cut a metrics line short
        f.write('{"step": 7, "loss": 1.2')

    finished = _cli_in_a_process(None, "distill", "--resume", run)
    assert finished.returncode == 0, finished.stderr
    assert "distilled student" in finished.stdout
    assert _steps_logged(run) == list(range(1, 10))  # every step once, every line whole
    assert _checkpoint_names(run) == ["step-000006", "step-000009"]
    assert not list((run / "checkpoints").glob(".*"))  # the dead writer's temp folder is gone

    from transformers import AutoModelForCausalLM

    student = AutoModelForCausalLM.from_pretrained(run / "student")
    final = load_file(run / "checkpoints" / "step-000009" / "model.safetensors")
    for name, weight in student.state_dict().items():
        if name in final:
            assert torch.equal(weight, final[name]), name

    # two crashes later, the run matches one that never crashed, step for step
    distill(config, tmp_path / "clean")
    crashed = [row["loss"] for row in read_jsonl(run / "metrics.jsonl")]
    clean = [row["loss"] for row in read_jsonl(tmp_path / "clean" / "metrics.jsonl")]
    assert crashed == pytest.approx(clean, rel=1e-4)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_teacher) -> Path:
    run = tmp_path_factory.mktemp("tiny-run") / "run"
    config = DistillConfig(teacher=str(tiny_teacher), student_layers=2, steps=2, batch_size=2, seq_len=32,
                           eval_batches=1)
    distill(config, run)
    return run


def _cancel_on(message_part: str, token: CancelToken):
    def on_event(event):
        if message_part in (event.message or ""):
            token.cancel()
    return on_event


@pytest.mark.parametrize("cancel_at, left", [("writing F16", []), ("quantizing to Q8_0", ["student-F16.gguf",
                                                                                       "student-Q8_0.gguf"])])
def test_cancelled_export_leaves_no_partial_gguf(tiny_run, tmp_path, cancel_at, left):
    from slm_studio.export.gguf import export_gguf

    token = CancelToken()
    with pytest.raises(Cancelled):
        export_gguf(tiny_run, tmp_path / "out", quants=["Q8_0", "Q4_0"], on_event=_cancel_on(cancel_at, token),
                    cancel=token)
    found = sorted(p.name for p in (tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
    assert found == left  # whole files only: no temp file, no partial GGUF
    if left:
        from slm_studio.models.sources import describe, resolve

        assert describe(resolve(str(tmp_path / "out" / left[-1]))).vocab_size == 49152


# --- a real full disk: a small tmpfs (needs root to mount; skipped elsewhere) ------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """Mount a tmpfs of a chosen size; yields a function size_bytes -> mount point."""
    mounted = []

    def mount(size: int) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                              capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip("cannot mount a tmpfs here (needs root): " + done.stderr.decode(errors="replace").strip())
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "--lazy", str(point)], check=False)  # lazy: llama.cpp may still map a file


def _folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_full_disk_while_saving_the_student_keeps_the_previous_one(tiny_run, small_disk, tmp_path):
    from slm_studio.distill.trainer import _save_student
    from slm_studio.models.loading import load_model, load_tokenizer

    model, tokenizer = load_model(tiny_run / "student"), load_tokenizer(tiny_run / "student")
    _save_student(tmp_path / "sized", model, tokenizer)
    student_bytes = sum(p.stat().st_size for p in (tmp_path / "sized").iterdir())
    disk = small_disk(int(student_bytes * 1.5))  # room for one student, not for a second beside it
    _save_student(disk / "student", model, tokenizer)
    before = _folder_bytes(disk / "student")
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(UserError, match="disk full while writing .*student; the previous files are kept"):
        _save_student(disk / "student", model, tokenizer)
    assert _folder_bytes(disk / "student") == before
    assert sorted(p.name for p in disk.iterdir()) == ["student"]  # no temp folder left
    load_model(disk / "student")


def test_full_disk_while_exporting_keeps_the_previous_gguf(tiny_run, small_disk, tmp_path, capsys):
    from slm_studio.cli import main

    def export(out: Path) -> int:
        return main(["export", str(tiny_run), "--out", str(out)])

    assert export(tmp_path / "sized") == 0
    gguf_bytes = (tmp_path / "sized" / "student-F16.gguf").stat().st_size
    disk = small_disk(int(gguf_bytes * 1.5))
    assert export(disk) == 0
    before = (disk / "student-F16.gguf").read_bytes()
    capsys.readouterr()
    assert export(disk) == 2  # the new file is written beside the old one until it is proven: no room
    last = capsys.readouterr().err.rstrip("\n").splitlines()[-1]
    assert last.startswith("slm-studio: error: disk full while writing") and "previous files are kept" in last
    assert (disk / "student-F16.gguf").read_bytes() == before
    assert sorted(p.name for p in disk.iterdir()) == ["student-F16.gguf"]
