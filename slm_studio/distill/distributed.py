"""Several processes, one run: `slm-studio distill` under torchrun, data-parallel through torch.distributed.

    torchrun --standalone --nproc_per_node 2 -m slm_studio distill --preset quick --out runs/two

Every process holds the whole student and draws its own slice of each global batch from the same seeded stream;
gradients are averaged across processes before the optimizer step, so all copies stay identical. Rank 0 alone
writes the run directory and reports progress. Without torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) this
is one process alone and every function here is a no-op.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from slm_studio.errors import UserError

# How long a process waits for the others at a collective before it gives up with an error. Rank 0 may make the
# others wait while it writes the teacher's answers or its top-k cache, so this is generous; a process that dies
# is noticed sooner: torchrun then stops the rest.
TIMEOUT = timedelta(minutes=60)
BUCKET_ELEMENTS = 1 << 24  # gradients are averaged in flat buckets of this many values (64 MB in fp32)

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    backend: str = ""
    device: torch.device | None = None  # where collectives run (nccl wants CUDA tensors); None: the CPU

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> str:
        return f"{self.size} processes over {self.backend}; rank 0 writes the run directory"

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def main_first(self, make: Callable[[], T]) -> T:
        """Rank 0 runs `make` first (it writes the run directory's shared files: teacher answers, baseline, top-k
        cache); the others wait, then run it too and find those files ready to read."""
        if self.is_main:
            result = make()
        self.barrier()
        if not self.is_main:
            result = make()
        return result

    def shard(self, global_batch: torch.Tensor) -> torch.Tensor:
        """This process's contiguous slice of a global batch of `size` equal parts."""
        if self.size == 1:
            return global_batch
        return global_batch.chunk(self.size)[self.rank]

    def any(self, flag: bool) -> bool:
        """True on every process when it is true on any (a cancel seen by one process stops all at one step)."""
        if self.size == 1:
            return flag
        value = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def average(self, metrics: dict[str, float]) -> dict[str, float]:
        """The mean of each metric over all processes."""
        if self.size == 1:
            return metrics
        values = torch.tensor(list(metrics.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(values)
        return dict(zip(metrics, (values / self.size).cpu().tolist()))

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Replace each gradient by its mean over all processes (after accumulation, before clipping). Done by
        hand rather than by DistributedDataParallel: the trainer runs the student's body and output embedding as
        separate calls, which DDP's forward hooks would not see."""
        if self.size == 1:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        for bucket in _buckets(grads, BUCKET_ELEMENTS):
            flat = torch.cat([g.reshape(-1) for g in bucket])
            dist.all_reduce(flat)
            flat /= self.size
            for grad, mean in zip(bucket, flat.split([g.numel() for g in bucket])):
                grad.copy_(mean.view_as(grad))

    def same_weights(self, model: torch.nn.Module) -> None:
        """Copy rank 0's weights to every process, so all start from one student whatever built it."""
        if self.size > 1:
            for tensor in model.state_dict().values():
                dist.broadcast(tensor, src=0)

    def report(self, steps: int, model: torch.nn.Module) -> None:
        """One line per process at the end: its steps and a fingerprint of its weights (equal on every rank)."""
        if self.size > 1:
            print(f"rank {self.rank}/{self.size}: {steps} steps, weights sha256 {weights_digest(model)}",
                  file=sys.stderr, flush=True)


SINGLE = World(backend="none")


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def this_process() -> World:
    """This process's place in the run as torchrun's environment describes it (no process group needed)."""
    if not launched_by_torchrun():
        return SINGLE
    return World(rank=int(os.environ["RANK"]), size=int(os.environ["WORLD_SIZE"]))


def join(device: torch.device) -> tuple[World, torch.device]:
    """Join the run's process group (gloo on CPU, nccl on CUDA) and return this process's world and device; under
    torchrun each process takes the GPU of its LOCAL_RANK. One process alone without torchrun."""
    if not launched_by_torchrun():
        return SINGLE, device
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"process {local_rank} on this machine has no GPU of its own "
                            f"({torch.cuda.device_count()} found); lower --nproc_per_node")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=TIMEOUT)
    return World(dist.get_rank(), dist.get_world_size(), backend, device), device


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def weights_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _buckets(tensors: list[torch.Tensor], limit: int) -> Iterable[list[torch.Tensor]]:
    bucket: list[torch.Tensor] = []
    size = 0
    for tensor in tensors:
        if bucket and size + tensor.numel() > limit:
            yield bucket
            bucket, size = [], 0
        bucket.append(tensor)
        size += tensor.numel()
    if bucket:
        yield bucket
