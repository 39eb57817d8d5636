"""Helpers every exercise check uses to find the learner's objects and say what is wrong with them.

A check calls these in order and stops at the first problem: each ``expect_*`` helper either
returns the (validated) object or raises :class:`CheckFailed` with a message that names the first
thing wrong and what to do about it. :func:`call_safely` calls the learner's function on copies of
the check's inputs, detects in-place mutation, and turns the untouched stub's
``NotImplementedError`` into :class:`NotAttempted`. :func:`preserved_rng` keeps the learner's
random state exactly as it was.

>>> import torch
>>> expect_tensor(torch.zeros(2, 3), "x", shape=(2, 3), dtype=torch.float32).shape
torch.Size([2, 3])
>>> expect_tensor([1, 2], "the result of f()")
Traceback (most recent call last):
...
tutorlib.grading.compare.CheckFailed: the result of f() is a list, expected a torch.Tensor: build one with torch.tensor(...) or torch.stack(...)
"""

from __future__ import annotations

import copy
import inspect
import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

__all__ = [
    "CheckFailed",
    "NotAttempted",
    "describe",
    "expect_defined",
    "expect_callable",
    "expect_tensor",
    "expect_finite",
    "expect_close",
    "expect_number",
    "call_safely",
    "preserved_rng",
    "same_device",
]


class CheckFailed(Exception):
    """Raised inside a check: the learner's answer is wrong; the message says what and how to fix it."""


class NotAttempted(Exception):
    """Raised inside a check: the learner has not replaced the ``NotImplementedError`` stub yet."""


def describe(x: Any) -> str:
    """A short description of an object's type, for messages.

    >>> describe(None), describe([1, 2]), describe(torch.zeros(2, 1))
    ('None', 'a list of 2 items', 'a tensor of shape (2, 1), dtype torch.float32, on cpu')
    """
    if x is None:
        return "None"
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)}, dtype {x.dtype}, on {x.device}"
    if isinstance(x, np.ndarray):
        return f"a NumPy array of shape {x.shape}"
    if isinstance(x, (list, tuple, dict, set)):
        return f"a {type(x).__name__} of {len(x)} item{'s' if len(x) != 1 else ''}"
    return f"a {type(x).__name__}"


def expect_defined(ns: Mapping[str, Any], name: str) -> Any:
    """Return ``ns[name]``, or fail with a message telling the learner to run the defining cell.

    >>> expect_defined({"f": len}, "f") is len
    True
    >>> expect_defined({}, "make_batch")
    Traceback (most recent call last):
    ...
    tutorlib.grading.compare.CheckFailed: `make_batch` is not defined: run the cell where you define it (and the cells above it), then check again
    """
    if name not in ns:
        raise CheckFailed(
            f"`{name}` is not defined: run the cell where you define it (and the cells above it), then check again"
        )
    return ns[name]


def expect_callable(obj: Any, name: str) -> Callable[..., Any]:
    """Return ``obj`` if it can be called, else fail saying what it is instead.

    >>> expect_callable(len, "len") is len
    True
    >>> expect_callable(3, "accuracy")
    Traceback (most recent call last):
    ...
    tutorlib.grading.compare.CheckFailed: `accuracy` is a int, not a function: define it with `def accuracy(...):` and do not reuse the name for a value
    """
    if not callable(obj):
        raise CheckFailed(
            f"`{name}` is {describe(obj)}, not a function: define it with `def {name}(...):` "
            "and do not reuse the name for a value"
        )
    return obj


def same_device(actual: torch.device, expected: torch.device) -> bool:
    """True when two devices are the same; an index left out (``cuda``) means the current device.

    >>> same_device(torch.device("cpu"), torch.device("cpu")), same_device(torch.device("meta"), torch.device("cpu"))
    (True, False)
    """
    if actual.type != expected.type:
        return False
    if actual.type == "cuda":
        cur = torch.cuda.current_device() if torch.cuda.is_available() else 0
        a = cur if actual.index is None else actual.index
        e = cur if expected.index is None else expected.index
        return a == e
    return actual.index is None or expected.index is None or actual.index == expected.index


def _fmt_shape(shape: Sequence[int]) -> str:
    return str(tuple(int(s) for s in shape))


def expect_tensor(
    x: Any,
    what: str,
    *,
    shape: Sequence[int] | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Check that ``x`` is a tensor with the given shape, dtype and device (each optional).

    ``what`` names the object in the message, e.g. ``"the result of make_batch(4, cpu)"``.

    >>> expect_tensor(torch.zeros(4, 8), "x", shape=(4, 2, 8))
    Traceback (most recent call last):
    ...
    tutorlib.grading.compare.CheckFailed: x has shape (4, 8), expected (4, 2, 8)
    """
    if x is None:
        raise CheckFailed(f"{what} is None, expected a torch.Tensor: did you forget a `return` statement?")
    if isinstance(x, (list, tuple)):
        raise CheckFailed(
            f"{what} is {describe(x).split(' of ')[0]}, expected a torch.Tensor: "
            "build one with torch.tensor(...) or torch.stack(...)"
        )
    if isinstance(x, np.ndarray):
        raise CheckFailed(f"{what} is a NumPy array, expected a torch.Tensor: convert it with torch.from_numpy(...)")
    if not isinstance(x, torch.Tensor):
        raise CheckFailed(f"{what} is {describe(x)}, expected a torch.Tensor")
    if shape is not None and tuple(x.shape) != tuple(shape):
        msg = f"{what} has shape {_fmt_shape(x.shape)}, expected {_fmt_shape(shape)}"
        if x.numel() == int(np.prod(shape)) and x.dim() != len(shape):
            msg += ": the number of values is right, so reshape it (e.g. .reshape(...), .unsqueeze(...))"
        raise CheckFailed(msg)
    if dtype is not None and x.dtype != dtype:
        raise CheckFailed(
            f"{what} has dtype {x.dtype}, expected {dtype}: create it with dtype={dtype} or convert with .to({dtype})"
        )
    if device is not None:
        want = torch.device(device)
        if not same_device(x.device, want):
            raise CheckFailed(
                f"{what} is on device {x.device}, expected {want}: create it with device=... "
                "(use the device you were given) or move it with .to(device)"
            )
    return x


def _index(flat_index: int, shape: Sequence[int]) -> tuple[int, ...]:
    if len(shape) == 0:
        return ()
    return tuple(int(i) for i in np.unravel_index(int(flat_index), tuple(shape)))


def expect_finite(x: torch.Tensor, what: str) -> torch.Tensor:
    """Fail when ``x`` holds NaN or ±Inf, saying how many and where the first one is.

    >>> expect_finite(torch.tensor([1.0, float("nan")]), "y")
    Traceback (most recent call last):
    ...
    tutorlib.grading.compare.CheckFailed: y contains NaN (1 of 2 values, the first at index (1,)): look for a division by zero, log of 0 or sqrt of a negative number
    """
    if not (x.is_floating_point() or x.is_complex()):
        return x
    xs = x.detach()
    if xs.device.type == "meta":
        return x
    nan, inf = torch.isnan(xs), torch.isinf(xs)
    for mask, label in ((nan, "NaN"), (inf, "Inf")):
        count = int(mask.sum())
        if count:
            first = int(torch.nonzero(mask.flatten())[0])
            raise CheckFailed(
                f"{what} contains {label} ({count} of {xs.numel()} values, the first at index "
                f"{_index(first, xs.shape)}): look for a division by zero, log of 0 or sqrt of a negative number"
            )
    return x


def expect_close(
    actual: torch.Tensor | float,
    expected: torch.Tensor | float,
    what: str,
    *,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    hint: str = "",
) -> None:
    """Fail when values differ by more than ``atol + rtol * |expected|``; names the largest difference and where.

    Compares in float64 on the CPU; shapes must already match (use :func:`expect_tensor` first).

    >>> expect_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]), "normalize(x)")
    Traceback (most recent call last):
    ...
    tutorlib.grading.compare.CheckFailed: normalize(x): values off: largest absolute difference 0.5 at index (1,) (got 2, expected 2.5); 1 of 2 values outside atol=1e-06, rtol=1e-05
    """
    a = torch.as_tensor(actual).detach().to("cpu", torch.float64)
    e = torch.as_tensor(expected).detach().to("cpu", torch.float64)
    if a.shape != e.shape:
        raise CheckFailed(f"{what} has shape {_fmt_shape(a.shape)}, expected {_fmt_shape(e.shape)}")
    diff = (a - e).abs()
    both_nan = torch.isnan(a) & torch.isnan(e)
    diff = torch.where(both_nan, torch.zeros_like(diff), diff)
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)
    bad = diff > atol + rtol * e.abs()
    nbad = int(bad.sum())
    if not nbad:
        return
    flat = int(torch.argmax(diff.flatten()))
    idx = _index(flat, a.shape)
    got, want = a.flatten()[flat].item(), e.flatten()[flat].item()
    if a.dim() == 0:
        msg = f"{what}: value off: got {got:.6g}, expected {want:.6g} (absolute difference {abs(got - want):.3g})"
    else:
        msg = (
            f"{what}: values off: largest absolute difference {diff.flatten()[flat].item():.3g} at index {idx} "
            f"(got {got:.6g}, expected {want:.6g}); {nbad} of {a.numel()} values outside atol={atol:g}, rtol={rtol:g}"
        )
    raise CheckFailed(msg + (f" — {hint}" if hint else ""))


def expect_number(x: Any, what: str, kind: type = float) -> float | int:
    """Check that ``x`` is a plain Python number (``float`` accepts ints too; ``int`` rejects bools and floats).

    >>> expect_number(torch.tensor(0.5), "accuracy(...)")
    Traceback (most recent call last):
    ...
    tutorlib.grading.compare.CheckFailed: accuracy(...) is a tensor of shape (), dtype torch.float32, on cpu, expected a Python float: call .item() on it
    """
    if isinstance(x, torch.Tensor):
        raise CheckFailed(f"{what} is {describe(x)}, expected a Python {kind.__name__}: call .item() on it")
    if isinstance(x, np.generic):
        raise CheckFailed(f"{what} is a NumPy {type(x).__name__}, expected a Python {kind.__name__}: wrap it in {kind.__name__}(...)")
    if kind is int:
        if isinstance(x, bool) or not isinstance(x, int):
            raise CheckFailed(f"{what} is {describe(x)}, expected a Python int")
        return x
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise CheckFailed(f"{what} is {describe(x)}, expected a Python {kind.__name__}")
    return float(x)


def _copy(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    try:
        return copy.deepcopy(x)
    except Exception:  # noqa: BLE001 - objects that cannot be copied are passed as they are
        return x


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
            return False
        if a.device.type == "meta":
            return True
        same = a == b
        if a.is_floating_point():
            same = same | (torch.isnan(a) & torch.isnan(b))
        return bool(same.all())
    if isinstance(a, torch.nn.Module) and isinstance(b, torch.nn.Module):
        sa, sb = a.state_dict(), b.state_dict()
        flags_a = [p.requires_grad for p in a.parameters()]
        flags_b = [p.requires_grad for p in b.parameters()]
        return flags_a == flags_b and sa.keys() == sb.keys() and all(_equal(sa[k], sb[k]) for k in sa)
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - incomparable objects are treated as unchanged
        return True


def _is_learner_frame(filename: str) -> bool:
    torch_dir = os.path.dirname(torch.__file__)
    return "site-packages" not in filename and not filename.startswith(torch_dir)


def _arg_names(fn: Callable[..., Any], n: int) -> list[str]:
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        params = []
    return [params[i] if i < len(params) else f"argument {i + 1}" for i in range(n)]


def call_safely(
    fn: Callable[..., Any],
    *args: Any,
    name: str = "your function",
    mutable: Sequence[int] = (),
    **kwargs: Any,
) -> Any:
    """Call the learner's ``fn(*args, **kwargs)`` on copies of the inputs and return its result.

    Positional arguments whose index is in ``mutable`` (a model and its optimizer, say) are passed
    as they are; all others are deep-copied first, and if ``fn`` changes a copy in place the call
    fails with a message naming the argument. A ``NotImplementedError`` raised from the learner's
    own code becomes :class:`NotAttempted`; any other exception (and ``sys.exit``) becomes
    :class:`CheckFailed` naming it. ``KeyboardInterrupt`` passes through (the grader's time limit).

    >>> def double(x):
    ...     x *= 2
    ...     return x
    >>> call_safely(double, torch.ones(2), name="double")
    Traceback (most recent call last):
    ...
    tutorlib.grading.compare.CheckFailed: double changed its input `x` in place (e.g. with `x *= ...`, `x[...] = ...` or a method ending in `_`): compute a new tensor instead and leave the input unchanged
    """
    passed = [a if i in mutable else _copy(a) for i, a in enumerate(args)]
    pristine = [None if i in mutable else _copy(a) for i, a in enumerate(args)]
    try:
        result = fn(*passed, **kwargs)
    except NotImplementedError as exc:
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if "write your answer here" in str(exc) or (tb is not None and _is_learner_frame(tb.tb_frame.f_code.co_filename)):
            raise NotAttempted(
                f"{name} still raises NotImplementedError: replace the `raise NotImplementedError(...)` line with your answer"
            ) from None
        raise CheckFailed(f"{name} raised NotImplementedError inside torch: {exc}") from None
    except SystemExit:
        raise CheckFailed(f"{name} called sys.exit()/exit(): return a value instead") from None
    except Exception as exc:  # noqa: BLE001 - any error of the learner's code is reported, not raised
        text = str(exc).strip().splitlines()
        detail = f": {text[0][:300]}" if text else ""
        raise CheckFailed(f"{name} raised {type(exc).__name__}{detail}") from None
    names = _arg_names(fn, len(args))
    for i, (now, before) in enumerate(zip(passed, pristine)):
        if i in mutable or now is before:
            continue
        if not _equal(now, before):
            raise CheckFailed(
                f"{name} changed its input `{names[i]}` in place (e.g. with `{names[i]} *= ...`, `{names[i]}[...] = ...` "
                "or a method ending in `_`): compute a new tensor instead and leave the input unchanged"
            )
    return result


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's (CPU and CUDA) global random state on exit.

    >>> a = torch.get_rng_state()
    >>> with preserved_rng():
    ...     _ = torch.rand(3)
    >>> bool(torch.equal(a, torch.get_rng_state()))
    True
    """
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    cuda_states = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda_states = torch.cuda.get_rng_state_all()
    mps_state = None
    mps = getattr(torch, "mps", None)
    if mps is not None and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        try:
            mps_state = mps.get_rng_state()
        except Exception:  # noqa: BLE001 - MPS state is best effort
            mps_state = None
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        elif torch.cuda.is_available() and torch.cuda.is_initialized():
            # CUDA was first used inside the block: put it back to the state a fresh seed gives.
            torch.cuda.manual_seed_all(torch.initial_seed())
        if mps_state is not None:
            mps.set_rng_state(mps_state)
