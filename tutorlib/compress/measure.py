"""What a compressed model costs and what it is worth: parameters, non-zeros, bytes, latency, accuracy.

:func:`measure` gives one :class:`Measurement`; :func:`compare_latency` times several models in
interleaved rounds (fair on a noisy, shared machine) and :func:`retime` puts measurements taken at
different times on that common footing; :func:`time_by_op`, :func:`matmul_share` and
:func:`amdahl_speedup` say how much a faster matmul can speed up the whole model; :func:`pareto_front` and
:func:`smallest_above` read a list of measurements; :func:`plot_variants` draws them.

>>> import torch
>>> from torch import nn
>>> m = measure(nn.Linear(8, 2), torch.randn(4, 8), name="linear", repeats=3)
>>> m.params, m.nonzero
(18, 18)
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "Measurement",
    "count_weights",
    "model_bytes",
    "serialized_bytes",
    "latency_ms",
    "compare_latency",
    "retime",
    "MATMUL_OPS",
    "time_by_op",
    "matmul_share",
    "amdahl_speedup",
    "accuracy_of",
    "correct_of",
    "paired_difference",
    "measure",
    "pareto_front",
    "smallest_above",
    "measurements_table",
    "plot_variants",
]


@dataclass
class Measurement:
    """One variant's numbers. ``latency_ms`` is the median of repeated runs on ``example``.

    >>> Measurement("dense", 10, 10, 100, 1.5, 0.9).as_dict()["name"]
    'dense'
    """

    name: str
    params: int
    nonzero: int
    bytes: int
    latency_ms: float
    accuracy: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Flat dict (``extra`` merged in), e.g. for :func:`tutorlib.viz.plot_pareto`."""
        d = asdict(self)
        extra = d.pop("extra")
        d.update(extra)
        d["size_mb"] = self.bytes / 1e6
        return d


def _tensors(obj: Any) -> list[torch.Tensor]:
    """All tensors inside a state_dict value (plain, quantized, torchao subclasses, packed tuples)."""
    if isinstance(obj, torch.Tensor):
        inner = [getattr(obj, n) for n in getattr(obj, "tensor_data_names", ()) if isinstance(getattr(obj, n, None), torch.Tensor)]
        return inner[:1] if inner else [obj]  # torchao: count the data tensor (qdata), not the scales
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors(o)]
    return []


def _is_weight_like(key: str) -> bool:
    last = key.rsplit(".", 1)[-1]
    return not (last in ("running_mean", "running_var", "num_batches_tracked", "mask", "weight_mask", "scale",
                         "zero_point", "initialized", "min_val", "max_val", "position_ids", "token_type_ids", "dtype")
                or last.endswith("scale") or last.endswith("zero_point"))


def count_weights(model: nn.Module) -> tuple[int, int]:
    """(total, non-zero) number of weight values, counted from the state_dict so quantized models count too.

    Pruning masks are not counted (they are not parameters); a masked weight counts its zeros.

    >>> count_weights(nn.Linear(3, 2))
    (8, 8)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    from torch.nn.utils import parametrize

    total = nonzero = 0
    seen: set[int] = set()
    # effective (masked) weights of parametrized / torch-pruned layers
    effective: dict[str, torch.Tensor] = {}
    for name, mod in model.named_modules():
        pre = f"{name}." if name else ""
        if parametrize.is_parametrized(mod):
            for pname in list(mod.parametrizations.keys()):  # type: ignore[attr-defined]
                effective[f"{pre}parametrizations.{pname}.original"] = getattr(mod, pname)
        if hasattr(mod, "weight_mask") and hasattr(mod, "weight_orig"):
            effective[f"{pre}weight_orig"] = mod.weight
    for key, value in model.state_dict(keep_vars=True).items():
        if not _is_weight_like(key) or key.endswith(".mask"):
            continue
        if key in effective:
            value = effective[key]
        for t in _tensors(value):
            if id(t) in seen or t.dtype == torch.bool:
                continue
            seen.add(id(t))
            data = t.int_repr() if t.is_quantized else t.detach()
            total += data.numel()
            nonzero += int(torch.count_nonzero(data))
    return total, nonzero


def serialized_bytes(obj: Any) -> int:
    """Size in bytes of ``torch.save(obj)`` (a state_dict, a dict of tensors, …).

    >>> serialized_bytes({"w": torch.zeros(1000, dtype=torch.int8)}) < serialized_bytes({"w": torch.zeros(1000)})
    True
    """
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getbuffer().nbytes


def model_bytes(model: nn.Module) -> int:
    """Size in bytes of ``torch.save(model.state_dict())``: what the model costs on disk.

    >>> model_bytes(nn.Linear(256, 256)) > 256 * 256 * 4
    True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    with torch.inference_mode(False):  # state_dict() of torchao tensors fails inside inference mode
        return serialized_bytes(model.state_dict())


def _call(model: nn.Module, example: Any) -> Any:
    if isinstance(example, Mapping):
        return model(**{k: v for k, v in example.items() if k not in ("labels", "teacher_logits")})
    if isinstance(example, (list, tuple)):
        return model(*example)
    return model(example)


def latency_ms(model: nn.Module, example: Any, repeats: int = 10, warmup: int = 2, timer: str = "wall") -> float:
    """Median time in milliseconds of ``model(example)`` (inference mode) over ``repeats`` runs.

    ``example`` is a tensor, a tuple of positional inputs, or a dict of keyword inputs (``labels``
    is dropped). The median resists the spikes of a shared machine. ``timer="cpu"`` measures the
    process's CPU time (all threads) instead of wall time: a fairer cost when other programs compete
    for the cores.

    >>> latency_ms(nn.Linear(4, 4), torch.randn(2, 4), repeats=3) > 0
    True
    """
    return compare_latency({"m": model}, example, repeats=repeats, warmup=warmup, timer=timer)["m"]


def compare_latency(models: Mapping[str, nn.Module], example: Any, repeats: int = 10, warmup: int = 2,
                    progress: bool = False, timer: str = "wall") -> dict[str, float]:
    """Median time (ms) of each model, measured in interleaved rounds so load changes hit all of them alike.

    ``timer`` is ``"wall"`` (latency) or ``"cpu"`` (process CPU time, all threads).

    >>> r = compare_latency({"a": nn.Linear(4, 4), "b": nn.Linear(4, 8)}, torch.randn(2, 4), repeats=3)
    >>> sorted(r)
    ['a', 'b']
    """
    if not models:
        raise ValueError("no models to time")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")
    if timer not in ("wall", "cpu"):
        raise ValueError(f"timer must be 'wall' or 'cpu', got {timer!r}")
    clock = time.perf_counter if timer == "wall" else time.process_time
    times: dict[str, list[float]] = {k: [] for k in models}
    states = {k: m.training for k, m in models.items()}
    for m in models.values():
        m.eval()
    rounds = range(warmup + repeats)
    if progress:
        from tqdm.auto import tqdm

        rounds = tqdm(rounds, desc="timing", leave=False)
    try:
        with torch.inference_mode():
            for r in rounds:
                for k, m in models.items():
                    t0 = clock()
                    _call(m, example)
                    if r >= warmup:
                        times[k].append(clock() - t0)
    finally:
        for k, m in models.items():
            m.train(states[k])
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def retime(points: Sequence[Measurement], models: Mapping[str, nn.Module], example: Any, repeats: int = 10,
           warmup: int = 2, progress: bool = False) -> list[Measurement]:
    """The same measurements with every latency re-taken in one interleaved :func:`compare_latency` run.

    Latencies measured minutes apart on a shared machine differ by the load of the moment as much
    as by the model; re-timing the variants side by side makes their ratios comparable. ``models``
    maps each measurement's name to its model.

    >>> a, b = nn.Linear(8, 8), nn.Linear(8, 2)
    >>> pts = [measure(a, torch.randn(4, 8), name="a", repeats=2), measure(b, torch.randn(4, 8), name="b", repeats=2)]
    >>> [p.name for p in retime(pts, {"a": a, "b": b}, torch.randn(4, 8), repeats=2)]
    ['a', 'b']
    """
    missing = [p.name for p in points if p.name not in models]
    if missing:
        raise KeyError(f"no model given for {missing}: pass models={{name: model}} for every measurement")
    times = compare_latency({p.name: models[p.name] for p in points}, example, repeats=repeats, warmup=warmup,
                            progress=progress)
    out = []
    for p in points:
        q = Measurement(**{**asdict(p), "extra": dict(p.extra)})
        q.latency_ms = times[p.name]
        out.append(q)
    return out


#: Profiler names of the matrix products that int8 kernels replace (float ``nn.Linear`` and its int8 twins).
MATMUL_OPS: tuple[str, ...] = ("aten::addmm", "aten::mm", "aten::_int_mm", "quantized::linear_dynamic",
                               "quantized::linear", "onednn::qlinear_pointwise")


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: the profiler's C++ side prints start/stop lines there."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def time_by_op(model: nn.Module, example: Any, repeats: int = 3) -> dict[str, float]:
    """Milliseconds of self CPU time per operator for one call of ``model(example)`` (mean of ``repeats``), largest first.

    Uses ``torch.profiler``; the operator names are PyTorch's (``aten::addmm`` is a Linear layer's
    matmul, ``aten::gelu`` the activation, ...).

    >>> ops = time_by_op(nn.Linear(64, 64), torch.randn(32, 64), repeats=1)
    >>> "aten::addmm" in ops
    True
    """
    from torch.profiler import ProfilerActivity, profile

    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    state = model.training
    model.eval()
    try:
        with torch.inference_mode():
            _call(model, example)  # warm-up outside the profile
            with _stderr_silenced(), profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(repeats):
                    _call(model, example)
    finally:
        model.train(state)
    totals = {e.key: e.self_cpu_time_total / 1000 / repeats for e in prof.key_averages()}
    return dict(sorted(((k, v) for k, v in totals.items() if v > 0), key=lambda kv: -kv[1]))


def matmul_share(ops: Mapping[str, float]) -> float:
    """The fraction of the time in ``ops`` (from :func:`time_by_op`) spent in :data:`MATMUL_OPS`.

    >>> matmul_share({"aten::addmm": 3.0, "aten::gelu": 1.0})
    0.75
    """
    total = sum(ops.values())
    if total <= 0:
        raise ValueError("ops holds no time: profile a model call with time_by_op first")
    return sum(v for k, v in ops.items() if k in MATMUL_OPS) / total


def amdahl_speedup(fraction: float, factor: float) -> float:
    """Amdahl's law: the whole-model speed-up when a ``fraction`` of the time runs ``factor``× faster.

    >>> round(amdahl_speedup(0.75, 2.0), 3)   # 75 % of the time in matmuls made 2x faster
    1.6
    >>> amdahl_speedup(0.75, float("inf"))   # even infinitely fast matmuls give at most 1 / (1 - 0.75)
    4.0
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if factor <= 0:
        raise ValueError(f"factor must be positive, got {factor}")
    return 1.0 / ((1.0 - fraction) + fraction / factor)


def accuracy_of(model: nn.Module, data: Dataset | DataLoader, collate_fn: Callable | None = None,
                batch_size: int = 64) -> float:
    """Accuracy of ``model`` on ``data`` via :func:`tutorlib.train.evaluate` (works for quantized models without gradients).

    >>> ds = torch.utils.data.TensorDataset(torch.randn(8, 3), torch.zeros(8, dtype=torch.long))
    >>> 0.0 <= accuracy_of(nn.Linear(3, 2), ds) <= 1.0
    True
    """
    from tutorlib.train import evaluate

    result = evaluate(model, data, collate_fn=collate_fn, batch_size=batch_size)
    if "val_accuracy" not in result:
        raise ValueError("the data gave no (logits, labels) to score: use (x, y) pairs or dicts with 'labels'")
    return float(result["val_accuracy"])


def correct_of(model: nn.Module, data: Dataset | DataLoader, collate_fn: Callable | None = None,
               batch_size: int = 64) -> torch.Tensor:
    """Per-example correctness (a bool tensor, one entry per example of ``data``) — the raw material of :func:`paired_difference`.

    >>> ds = torch.utils.data.TensorDataset(torch.randn(8, 3), torch.zeros(8, dtype=torch.long))
    >>> correct_of(nn.Linear(3, 2), ds).shape
    torch.Size([8])
    """
    from tutorlib.train import predict

    predicted, targets = predict(model, data, collate_fn=collate_fn, batch_size=batch_size, class_ids=True)
    if targets is None:
        raise ValueError("the data gave no labels to score: use (x, y) pairs or dicts with 'labels'")
    return predicted == targets


def paired_difference(correct_a: torch.Tensor, correct_b: torch.Tensor) -> tuple[float, float]:
    """Accuracy of ``b`` minus accuracy of ``a`` on the same examples, and its standard error (both in points).

    Both models answered the same questions, so the difference is judged by the examples where they
    *disagree*: the standard error is ``sd(b_i − a_i) / √n``. A compressed model that drops 1.7 points
    with a standard error of 1.5 has not been shown to be worse than one that drops 1.0.

    >>> a = torch.tensor([True] * 90 + [False] * 10); b = a.clone(); b[:3] = False
    >>> round(paired_difference(a, b)[0], 6)
    -3.0
    """
    a, b = torch.as_tensor(correct_a).float().flatten(), torch.as_tensor(correct_b).float().flatten()
    if a.shape != b.shape or a.numel() < 2:
        raise ValueError(f"need two equally long correctness vectors over the same ≥ 2 examples, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}: score both models on the same data with correct_of()")
    d = b - a
    return 100 * float(d.mean()), 100 * float(d.std() / d.numel() ** 0.5)


def measure(model: nn.Module, example: Any, data: Dataset | DataLoader | None = None, *, name: str = "model",
            collate_fn: Callable | None = None, batch_size: int = 64, repeats: int = 10, warmup: int = 2,
            **extra: Any) -> Measurement:
    """Parameters, non-zeros, bytes on disk, median latency on ``example`` and (with ``data``) accuracy.

    Extra keyword arguments are stored in ``Measurement.extra`` (e.g. ``sparsity=0.5``).

    >>> ds = torch.utils.data.TensorDataset(torch.randn(8, 3), torch.zeros(8, dtype=torch.long))
    >>> r = measure(nn.Linear(3, 2), torch.randn(4, 3), ds, name="tiny", repeats=2)
    >>> r.name, r.accuracy is not None
    ('tiny', True)
    """
    total, nonzero = count_weights(model)
    acc = accuracy_of(model, data, collate_fn, batch_size) if data is not None else None
    return Measurement(name=name, params=total, nonzero=nonzero, bytes=model_bytes(model),
                       latency_ms=latency_ms(model, example, repeats, warmup), accuracy=acc, extra=dict(extra))


def _as_dicts(points: Sequence[Measurement | Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in points:
        if isinstance(p, Measurement):
            out.append(p.as_dict())
        elif isinstance(p, Mapping):
            out.append(dict(p))
        else:
            raise TypeError(f"expected Measurement objects or dicts, got {type(p).__name__}")
    return out


def pareto_front(points: Sequence[Measurement | Mapping[str, Any]], x: str = "latency_ms",
                 y: str = "accuracy") -> list[str]:
    """Names of the variants no other variant beats on both axes (lower ``x`` and higher ``y``), by rising ``x``.

    A point is dominated when another is at least as good on both axes and better on one.

    >>> pts = [{"name": "a", "ms": 1, "acc": 0.80}, {"name": "b", "ms": 2, "acc": 0.90}, {"name": "c", "ms": 3, "acc": 0.85}]
    >>> pareto_front(pts, "ms", "acc")
    ['a', 'b']
    """
    rows = _as_dicts(points)
    for r in rows:
        if x not in r or y not in r or r[x] is None or r[y] is None:
            raise KeyError(f"every point needs numeric {x!r} and {y!r}; {r.get('name', r)} lacks one")
    front = []
    for r in rows:
        dominated = any(o is not r and o[x] <= r[x] and o[y] >= r[y] and (o[x] < r[x] or o[y] > r[y]) for o in rows)
        if not dominated:
            front.append(r)
    front.sort(key=lambda r: (r[x], -r[y]))
    return [r["name"] for r in front]


def smallest_above(points: Sequence[Measurement | Mapping[str, Any]], min_accuracy: float, size: str = "bytes",
                   accuracy: str = "accuracy") -> str | None:
    """The name of the smallest variant (by ``size``) whose ``accuracy`` is at least ``min_accuracy``; None if none is.

    Ties in size go to the more accurate variant.

    >>> pts = [{"name": "big", "bytes": 100, "accuracy": 0.9}, {"name": "small", "bytes": 10, "accuracy": 0.7}]
    >>> smallest_above(pts, 0.8), smallest_above(pts, 0.5), smallest_above(pts, 0.95)
    ('big', 'small', None)
    """
    rows = [r for r in _as_dicts(points) if r.get(accuracy) is not None and r[accuracy] >= min_accuracy]
    if not rows:
        return None
    return min(rows, key=lambda r: (r[size], -r[accuracy]))["name"]


def measurements_table(points: Sequence[Measurement | Mapping[str, Any]], baseline: str | None = None) -> str:
    """A Markdown table of measurements; with ``baseline`` also speed-up and size ratio relative to it.

    >>> print(measurements_table([Measurement("a", 10, 5, 1000, 2.0, 0.9)]).splitlines()[0])
    | variant | params | non-zero | size (MB) | latency (ms) | accuracy |
    """
    rows = _as_dicts(points)
    base = next((r for r in rows if r["name"] == baseline), None) if baseline else None
    if baseline and base is None:
        raise KeyError(f"no variant named {baseline!r}; have {[r['name'] for r in rows]}")
    head = "| variant | params | non-zero | size (MB) | latency (ms) | accuracy |"
    sep = "|---|---:|---:|---:|---:|---:|"
    if base:
        head += " speed-up | size ÷ |"
        sep += "---:|---:|"
    lines = [head, sep]
    for r in rows:
        acc = "—" if r.get("accuracy") is None else f"{100 * r['accuracy']:.1f} %"
        line = (f"| {r['name']} | {r['params']:,} | {r['nonzero']:,} | {r['bytes'] / 1e6:.2f} | "
                f"{r['latency_ms']:.1f} | {acc} |")
        if base:
            line += f" {base['latency_ms'] / r['latency_ms']:.2f}× | {base['bytes'] / r['bytes']:.2f}× |"
        lines.append(line)
    return "\n".join(lines)


def plot_variants(points: Sequence[Measurement | Mapping[str, Any]], x: str = "latency_ms", y: str = "accuracy",
                  title: str = "Compression trade-off", ax: Any = None, logx: bool = False):
    """Scatter every variant with its Pareto front (via :func:`tutorlib.viz.plot_pareto`); returns the figure.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> fig = plot_variants([Measurement("a", 1, 1, 10, 1.0, 0.8), Measurement("b", 1, 1, 20, 2.0, 0.9)])
    """
    from tutorlib.viz import plot_pareto

    rows = _as_dicts(points)
    labels = {"latency_ms": "latency per batch (ms, median)", "bytes": "size on disk (bytes)",
              "size_mb": "size on disk (MB)", "accuracy": "accuracy", "nonzero": "non-zero weights"}
    fig = plot_pareto(rows, x, y, label="name", title=title, xlabel=labels.get(x, x), ylabel=labels.get(y, y), ax=ax)
    if logx:
        fig.axes[0].set_xscale("log")
    return fig
