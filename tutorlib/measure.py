"""Measuring what a model costs: time of a call, and live tensor memory on any device (CPU included).

:func:`time_call` times a function the way every lesson does (warm-up calls first, then the median,
or the best, of several runs: the median resists the spikes of a shared machine).

PyTorch keeps allocator statistics on CUDA only (``torch.cuda.max_memory_allocated``). On a CPU the
course measures memory with :class:`LiveTensorMemory`, a ``TorchDispatchMode`` that adds up the bytes
of every tensor storage an op creates inside the ``with`` block and subtracts them when the storage
is freed. It counts tensors only (weights, gradients, optimizer state, saved activations,
temporaries), not the interpreter or the allocator's cache, and not the work buffers inside a fused
kernel (e.g. the flash kernel behind ``scaled_dot_product_attention``), which it cannot see.

>>> import torch
>>> with LiveTensorMemory() as mem:
...     x = torch.zeros(1024)                       # 4 KiB
>>> mem.peak_bytes
4096
"""

from __future__ import annotations

import statistics
import time
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["LiveTensorMemory", "time_call", "median_ms"]


class LiveTensorMemory(TorchDispatchMode):
    """Track the bytes of tensor storages created inside the ``with`` block: ``current_bytes`` and ``peak_bytes``.

    Storages that existed before the block (a model's weights) are not counted, nor are views of them made
    inside it (``W.T``, ``W.view(...)`` share the weight's storage); add the weights yourself.

    >>> with LiveTensorMemory() as mem:
    ...     a = torch.ones(256); b = a * 2; del a
    >>> mem.peak_bytes, mem.current_bytes
    (2048, 1024)
    """

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[tuple[str, int], int] = {}
        self.current_bytes = 0
        self.peak_bytes = 0

    def _free(self, key: tuple[str, int]) -> None:
        self.current_bytes -= self._live.pop(key, 0)

    @staticmethod
    def _key(t: torch.Tensor) -> tuple[tuple[str, int], int] | None:
        if t.device.type == "meta":
            return None
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # e.g. sparse or functional tensors
            return None
        return (str(storage.device), storage.data_ptr()), storage.nbytes()

    def _track(self, t: torch.Tensor, inputs: set[tuple[str, int]]) -> None:
        found = self._key(t)
        if found is None:
            return
        key, size = found
        # a view of an input (W.T of a weight) allocates nothing: its storage is the input's
        if size == 0 or key in self._live or key in inputs:
            return
        storage = t.untyped_storage()
        self._live[key] = size
        self.current_bytes += size
        self.peak_bytes = max(self.peak_bytes, self.current_bytes)
        weakref.finalize(storage, self._free, key)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        inputs = {found[0] for leaf in tree_leaves((args, kwargs)) if isinstance(leaf, torch.Tensor)
                  and (found := self._key(leaf)) is not None}
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self._track(leaf, inputs)
        return out


def time_call(fn: Callable[[], Any], repeats: int = 10, warmup: int = 1, stat: str = "median") -> float:
    """Seconds one call of ``fn()`` takes: the ``stat`` ("median" or "min") of ``repeats`` runs after ``warmup`` calls.

    >>> time_call(lambda: sum(range(100)), repeats=3) >= 0
    True
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")
    if stat not in ("median", "min"):
        raise ValueError(f"stat must be 'median' or 'min', got {stat!r}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) if stat == "median" else min(times)


def median_ms(fn: Callable[[], Any], repeats: int = 10, warmup: int = 1) -> float:
    """Median milliseconds of one call of ``fn()`` (after ``warmup`` calls): ``1000 * time_call(fn, ...)``.

    >>> median_ms(lambda: None, repeats=3) < 1000
    True
    """
    return 1000.0 * time_call(fn, repeats=repeats, warmup=warmup)
