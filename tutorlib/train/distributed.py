"""Data-parallel training under ``torchrun``: who am I, set up the process group, shard global batches.

Started by ``torchrun --nproc_per_node=N script.py``, the :class:`~tutorlib.train.Trainer` wraps the
model in ``DistributedDataParallel`` (gloo on CPU, nccl on CUDA) and gives every rank an equal
slice of each global batch, so N processes see exactly the batches one process would.

>>> from tutorlib.train.distributed import dist_info
>>> dist_info().world_size >= 1
True
"""

from __future__ import annotations

import atexit
import gc
import os
import time
import weakref
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = ["DistInfo", "dist_info", "init_distributed", "wrap_ddp", "shutdown_distributed", "GlobalBatchSampler",
           "is_main_process"]

# Objects (Trainers) whose ``model`` attribute is a DDP wrapper made by :func:`wrap_ddp`.
_DDP_HOLDERS: "weakref.WeakSet[Any]" = weakref.WeakSet()


@dataclass(frozen=True)
class DistInfo:
    """Rank, world size and local rank of this process (1 process: 0, 1, 0)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_info() -> DistInfo:
    """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` as set by ``torchrun``.

    >>> dist_info().rank >= 0
    True
    """
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))


def is_main_process() -> bool:
    """True on rank 0 (the process that logs, plots and writes checkpoints).

    >>> is_main_process()
    True
    """
    return dist_info().rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Initialise the default process group once (gloo for CPU, nccl for CUDA) when under ``torchrun``.

    >>> init_distributed(torch.device("cpu")).world_size   # outside torchrun: nothing to do
    1
    """
    info = dist_info()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        # Tear down while Python is still whole, before the interpreter's finalisation (a no-op if the
        # script already called shutdown_distributed): see shutdown_distributed for why.
        atexit.register(shutdown_distributed)
    return info


def wrap_ddp(holder: Any, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Wrap ``model`` in ``DistributedDataParallel`` and remember ``holder`` (whose ``model`` it becomes).

    :func:`shutdown_distributed` puts the bare model back on every holder, so after the group is gone
    the holder (a Trainer) can still evaluate, predict and save in this process. Needs an initialised
    process group:

    >>> trainer.model = wrap_ddp(trainer, trainer.model, trainer.device)   # doctest: +SKIP
    """
    ids = [device.index] if device.type == "cuda" else None
    wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    _DDP_HOLDERS.add(holder)
    return wrapped


def shutdown_distributed(drain_s: float = 0.2) -> None:
    """Unwrap the DDP models made by :func:`wrap_ddp`, destroy the default process group, let gloo settle.

    Why: a gloo worker thread frees each finished collective (an ``AsyncWork``) itself, and that
    needs the GIL. If a rank's script ends first, the free can land in the interpreter's
    finalisation, where taking the GIL ends the thread and C++ aborts the whole rank ("terminate
    called without an active exception", exit -6; seen under load in about 1 run in 20-40, stack
    read from a core dump). Destroying the group is not enough on its own: once a model has been
    wrapped in DDP the group (and its threads) outlive ``destroy_process_group()`` in torch 2.13. So
    this also sleeps ``drain_s`` seconds without the GIL, for the workers to finish while Python is
    alive. Registered with ``atexit`` by :func:`init_distributed`, so a ``torchrun`` script that simply
    ends exits cleanly; call it yourself to end distributed training early. It never waits for the
    other ranks (a rank that failed must not hang the rest). Safe to call twice, and outside ``torchrun``.

    >>> shutdown_distributed()   # not distributed: nothing to do
    """
    for holder in list(_DDP_HOLDERS):
        model = getattr(holder, "model", None)
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            holder.model = model.module
    _DDP_HOLDERS.clear()
    if dist.is_available() and dist.is_initialized():
        gloo = dist.get_backend() == "gloo"
        gc.collect()  # free the DDP wrappers let go of above (they hold the group's reducer)
        dist.destroy_process_group()
        if gloo and drain_s > 0:
            time.sleep(drain_s)


class GlobalBatchSampler(Sampler[list[int]]):
    """Yield this rank's slice of each global batch of a seeded per-epoch permutation.

    With world_size 1 it is an ordinary (optionally shuffled) batch sampler; with N ranks, rank r
    gets items ``[r*B/N, (r+1)*B/N)`` of every global batch of size B.

    >>> s = GlobalBatchSampler(10, batch_size=4, shuffle=False); [len(b) for b in s]
    [4, 4, 2]
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = False,
                 rank: int = 0, world_size: int = 1) -> None:
        if batch_size % world_size:
            raise ValueError(f"global batch size {batch_size} must be divisible by the number of processes {world_size}")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` (different each epoch, identical across runs)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        per_rank = self.batch_size // self.world_size
        for start in range(0, self.n, self.batch_size):
            batch = order[start : start + self.batch_size]
            if len(batch) < self.batch_size and (self.drop_last or self.world_size > 1):
                # A ragged last batch cannot be split evenly over ranks: drop it (single process: only if asked).
                if self.drop_last or len(batch) < self.world_size:
                    return
                per = len(batch) // self.world_size
                yield batch[self.rank * per : (self.rank + 1) * per]
                return
            yield batch[self.rank * per_rank : (self.rank + 1) * per_rank]

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and not self.drop_last and rest >= self.world_size else 0)
