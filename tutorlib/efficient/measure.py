"""Measure a training step: throughput (samples/s, tokens/s), peak memory and model FLOPs utilisation (MFU).

Peak memory comes from the CUDA caching allocator on a GPU (``torch.cuda.max_memory_allocated``) and
from the process's resident set size on a CPU (a thread samples ``VmRSS`` in ``/proc/self/status``;
``resource.getrusage`` where ``/proc`` is missing). MFU is the fraction of the hardware's peak
FLOP/s that the model's own arithmetic uses: ``flops_per_step / seconds_per_step / peak``; the
FLOPs of a transformer step are estimated as ``6 · N · tokens`` (Kaplan et al. 2020; PaLM appendix B
adds ``12 · L · d · T`` per token for attention), or counted exactly with
``torch.utils.flop_counter.FlopCounterMode``.

>>> import torch
>>> m = measure(lambda: torch.randn(256, 256) @ torch.randn(256, 256), steps=3, warmup=1, samples_per_step=256)
>>> m.samples_per_s > 0 and m.memory_source in ("process RSS", "cuda allocator")
True
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

__all__ = [
    "Measurement",
    "measure",
    "RSSSampler",
    "current_rss_mb",
    "transformer_train_flops",
    "count_flops",
    "mfu",
    "GPU_PEAK_TFLOPS",
    "device_peak_flops",
    "matmul_peak_flops",
    "synchronize",
]

# Dense (no sparsity) peak tensor throughput in TFLOP/s from NVIDIA's data sheets, per compute dtype.
GPU_PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H200": {"bf16": 989.0, "fp16": 989.0, "tf32": 494.5, "fp32": 67.0},
    "H100 PCIe": {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.0},
    "H100": {"bf16": 989.0, "fp16": 989.0, "tf32": 494.5, "fp32": 67.0},
    "A100": {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5},
    "L40S": {"bf16": 362.0, "fp16": 362.0, "tf32": 183.0, "fp32": 91.6},
    "A10G": {"bf16": 70.0, "fp16": 70.0, "tf32": 35.0, "fp32": 31.2},
    "A10": {"bf16": 125.0, "fp16": 125.0, "tf32": 62.5, "fp32": 31.2},
    "L4": {"bf16": 121.0, "fp16": 121.0, "tf32": 60.0, "fp32": 30.3},
    "RTX 4090": {"bf16": 165.2, "fp16": 165.2, "tf32": 82.6, "fp32": 82.6},
    "RTX 3090": {"bf16": 71.0, "fp16": 71.0, "tf32": 35.6, "fp32": 35.6},
    "V100": {"fp16": 125.0, "fp32": 15.7},
    "T4": {"fp16": 65.0, "fp32": 8.1},
}

_DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued GPU work (a no-op on CPU) so wall-clock timings are honest.

    >>> synchronize("cpu")
    """
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize(dev)
    elif dev is not None and dev.type == "mps":
        torch.mps.synchronize()


def current_rss_mb() -> float:
    """This process's resident set size now, in MiB (``VmRSS``; the peak ``ru_maxrss`` where /proc is missing).

    >>> current_rss_mb() > 0
    True
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource  # POSIX only; /proc is tried first

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)


class RSSSampler:
    """Context manager that samples the process RSS every ``interval`` seconds in a thread and keeps the peak.

    ``baseline_mb`` is the RSS on entry, ``peak_mb`` the largest sample (entry and exit included).

    >>> with RSSSampler(0.005) as s:
    ...     x = torch.ones(2_000_000)
    >>> s.peak_mb >= s.baseline_mb
    True
    """

    def __init__(self, interval: float = 0.005) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.interval = interval
        self.baseline_mb = 0.0
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, current_rss_mb())
            self._stop.wait(self.interval)

    def __enter__(self) -> "RSSSampler":
        self.baseline_mb = self.peak_mb = current_rss_mb()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, current_rss_mb())


@dataclass
class Measurement:
    """What :func:`measure` found. Rates are per second of wall time; memory in MiB.

    ``peak_memory_mb`` is the CUDA allocator's peak (GPU) or the process's peak RSS (CPU);
    ``memory_delta_mb`` is that peak minus the value when measuring started. ``mfu`` is ``None``
    unless both the FLOPs per step and the device's peak FLOP/s are known.
    """

    name: str
    device: str
    steps: int
    seconds_per_step: float
    samples_per_s: float
    tokens_per_s: float | None
    peak_memory_mb: float
    memory_delta_mb: float
    memory_source: str
    flops_per_step: float | None = None
    achieved_tflops: float | None = None
    peak_tflops: float | None = None
    mfu: float | None = None

    def as_row(self) -> dict[str, Any]:
        """A flat dict (for tables and DataFrames).

        >>> Measurement("x", "cpu", 1, 1.0, 2.0, None, 10.0, 1.0, "process RSS").as_row()["samples_per_s"]
        2.0
        """
        return asdict(self)

    def __str__(self) -> str:
        parts = [f"{self.name or 'step'}: {self.seconds_per_step * 1e3:.1f} ms/step", f"{self.samples_per_s:,.1f} samples/s"]
        if self.tokens_per_s is not None:
            parts.append(f"{self.tokens_per_s:,.0f} tokens/s")
        parts.append(f"peak {self.peak_memory_mb:,.0f} MiB ({self.memory_source}, +{self.memory_delta_mb:,.0f})")
        if self.achieved_tflops is not None:
            parts.append(f"{self.achieved_tflops:.3g} TFLOP/s")
        if self.mfu is not None:
            parts.append(f"MFU {self.mfu:.1%}")
        return " | ".join(parts)


def transformer_train_flops(n_params: int, tokens: int, n_layer: int | None = None, d_model: int | None = None,
                            seq_len: int | None = None) -> float:
    """FLOPs of one training step (forward + backward) over ``tokens`` tokens: ``6 · N · tokens``.

    With ``n_layer``, ``d_model`` and ``seq_len`` the attention-score term ``12 · L · d · T`` per token
    (PaLM, appendix B) is added; it matters when ``T`` is large compared with ``d``.

    >>> transformer_train_flops(1_000_000, 1000)
    6000000000.0
    >>> transformer_train_flops(1_000_000, 1000, n_layer=2, d_model=64, seq_len=128)
    6196608000.0
    """
    if n_params <= 0 or tokens <= 0:
        raise ValueError(f"n_params and tokens must be positive, got {n_params} and {tokens}")
    per_token = 6.0 * n_params
    given = [v is not None for v in (n_layer, d_model, seq_len)]
    if any(given) and not all(given):
        raise ValueError("give all of n_layer, d_model and seq_len for the attention term, or none of them")
    if all(given):
        per_token += 12.0 * n_layer * d_model * seq_len  # type: ignore[operator]
    return per_token * tokens


def count_flops(fn: Callable[[], Any]) -> int:
    """Run ``fn()`` under ``torch.utils.flop_counter.FlopCounterMode`` and return the FLOPs it counted.

    Counts matmuls/convolutions/attention (forward, and backward if ``fn`` calls ``.backward()``);
    elementwise ops are not counted, as in MFU conventions.

    >>> count_flops(lambda: nn.Linear(8, 4)(torch.zeros(3, 8)))   # 2 · 3 · 8 · 4
    192
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def mfu(flops_per_step: float, seconds_per_step: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: achieved FLOP/s over the hardware's peak FLOP/s.

    >>> mfu(6e12, 0.1, 989e12)   # 60 TFLOP/s achieved on a 989 TFLOP/s H100
    0.06066734074823053
    """
    for name, v in (("flops_per_step", flops_per_step), ("seconds_per_step", seconds_per_step), ("peak_flops", peak_flops)):
        if not v > 0:
            raise ValueError(f"{name} must be positive, got {v}")
    return flops_per_step / seconds_per_step / peak_flops


def device_peak_flops(device: torch.device | str | None = None, dtype: torch.dtype | str = torch.bfloat16) -> float | None:
    """Data-sheet peak FLOP/s of a known NVIDIA GPU for ``dtype`` (fp32 counts as tf32 when TF32 matmuls are on); ``None`` on CPU or unknown GPUs.

    >>> device_peak_flops("cpu") is None
    True
    """
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type != "cuda" or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(dev)
    key = _DTYPE_NAMES.get(dtype, dtype) if isinstance(dtype, torch.dtype) else str(dtype)
    if key == "fp32" and torch.backends.cuda.matmul.allow_tf32:
        key = "tf32"
    for gpu, table in GPU_PEAK_TFLOPS.items():
        if gpu == "H100 PCIe" and not ("H100" in name and "PCIe" in name):
            continue
        if gpu in name:
            return table[key] * 1e12 if key in table else None
    return None


def matmul_peak_flops(device: torch.device | str | None = None, dtype: torch.dtype = torch.float32, n: int = 1024,
                      repeats: int = 5) -> float:
    """Measured FLOP/s of an ``n × n`` matmul on ``device`` — a practical "peak" where no data sheet applies (CPUs).

    >>> matmul_peak_flops("cpu", n=128, repeats=2) > 0
    True
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    a = torch.randn(n, n, device=dev).to(dtype)
    b = torch.randn(n, n, device=dev).to(dtype)
    a @ b
    synchronize(dev)
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        a @ b
        synchronize(dev)
        times.append(time.perf_counter() - t0)
    return 2.0 * n**3 / min(times)


def measure(step: Callable[[], Any], *, steps: int = 5, warmup: int = 1, samples_per_step: int,
            tokens_per_step: int | None = None, flops_per_step: float | None = None, peak_flops: float | None = None,
            device: torch.device | str | None = None, name: str = "", interval: float = 0.002) -> Measurement:
    """Time ``steps`` calls of ``step()`` after ``warmup`` untimed ones and record peak memory.

    ``step`` is one training step (or one ``Trainer.fit`` over one batch): anything callable.
    ``device`` picks the memory source (CUDA allocator or process RSS) and what to synchronise;
    on CUDA, ``peak_flops`` defaults to the data-sheet value of the GPU for bf16. The step time is
    the median of the timed calls.

    >>> m = measure(lambda: sum(range(1000)), steps=2, warmup=0, samples_per_step=10, name="sum")
    >>> m.name, m.steps
    ('sum', 2)
    """
    if not callable(step):
        raise TypeError(f"step must be a function taking no arguments, got {type(step).__name__}")
    if steps < 1 or warmup < 0:
        raise ValueError(f"need steps >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    if samples_per_step <= 0:
        raise ValueError(f"samples_per_step must be positive, got {samples_per_step}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    for _ in range(warmup):
        step()
    synchronize(dev)
    times: list[float] = []
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev) / 2**20
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            synchronize(dev)
            times.append(time.perf_counter() - t0)
        peak = torch.cuda.max_memory_allocated(dev) / 2**20
        source = "cuda allocator"
    else:
        with RSSSampler(interval) as sampler:
            for _ in range(steps):
                t0 = time.perf_counter()
                step()
                synchronize(dev)
                times.append(time.perf_counter() - t0)
        base, peak, source = sampler.baseline_mb, sampler.peak_mb, "process RSS"
    sec = statistics.median(times)
    if peak_flops is None and dev.type == "cuda":
        peak_flops = device_peak_flops(dev, torch.bfloat16)
    achieved = flops_per_step / sec if flops_per_step else None
    return Measurement(
        name=name, device=str(dev), steps=steps, seconds_per_step=sec, samples_per_s=samples_per_step / sec,
        tokens_per_s=(tokens_per_step / sec) if tokens_per_step else None, peak_memory_mb=peak,
        memory_delta_mb=max(0.0, peak - base), memory_source=source, flops_per_step=flops_per_step,
        achieved_tflops=achieved / 1e12 if achieved else None,
        peak_tflops=peak_flops / 1e12 if peak_flops else None,
        mfu=mfu(flops_per_step, sec, peak_flops) if (flops_per_step and peak_flops) else None,
    )

