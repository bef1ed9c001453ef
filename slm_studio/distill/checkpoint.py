"""Checkpoints: student weights (safetensors), optimizer, scheduler, RNG and data position, written atomically."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from slm_studio.fileio import atomic_dir

KEEP = 2  # the newest checkpoints kept; older ones are removed once a newer one is complete


@dataclass
class TrainerState:
    step: int  # optimizer steps done
    position: int  # samples drawn from the data stream


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir: Path, student, optimizer, scheduler, state: TrainerState) -> Path:
    target = checkpoint_dir(run_dir) / f"step-{state.step:06d}"
    with atomic_dir(target) as tmp:
        student.save_pretrained(tmp, safe_serialization=True)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
                   tmp / "trainer.pt")
        (tmp / "state.json").write_text(json.dumps({"step": state.step, "position": state.position}))
    for old in list_checkpoints(run_dir)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    for unfinished in checkpoint_dir(run_dir).glob(".step-*"):  # temp folders of a writer that was killed
        shutil.rmtree(unfinished, ignore_errors=True)
    return target


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a folder is complete once renamed into place with its state.json)."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("step-*") if (p / "state.json").exists() and (p / "trainer.pt").exists())


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def load_trainer_state(folder: Path, optimizer, scheduler) -> TrainerState:
    saved = torch.load(folder / "trainer.pt", weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["torch_rng"])
    if saved["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    state = json.loads((folder / "state.json").read_text())
    return TrainerState(step=state["step"], position=state["position"])
