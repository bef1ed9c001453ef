"""The CLI in a process that kills itself with SIGKILL at a chosen moment (for tests/test_crash.py):

    python -m tests.crash_runner mid-step 5 -- distill --config run.toml --out RUN
    python -m tests.crash_runner in-checkpoint 6 -- distill --resume RUN

`mid-step N`: inside optimizer step N of this process, after the backward pass, before the weights change.
`in-checkpoint N`: while checkpoint step-N is being written (its trainer.pt is on disk, its state.json not yet).
"""

import os
import signal
import sys

import torch


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def kill_mid_step(step: int) -> None:
    real, calls = torch.nn.utils.clip_grad_norm_, [0]

    def clip_then_maybe_die(*args, **kwargs):  # the trainer clips once per step, between backward and update
        calls[0] += 1
        if calls[0] == step:
            _die()
        return real(*args, **kwargs)

    torch.nn.utils.clip_grad_norm_ = clip_then_maybe_die


def kill_in_checkpoint(step: int) -> None:
    real = torch.save

    def save_then_maybe_die(obj, path, *args, **kwargs):
        real(obj, path, *args, **kwargs)
        if f"step-{step:06d}" in str(path):
            _die()

    torch.save = save_then_maybe_die


if __name__ == "__main__":
    where, step, separator, *argv = sys.argv[1:]
    assert separator == "--"
    {"mid-step": kill_mid_step, "in-checkpoint": kill_in_checkpoint}[where](int(step))
    from slm_studio.cli import main

    sys.exit(main(argv))
