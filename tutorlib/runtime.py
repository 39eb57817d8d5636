"""Where code runs and how big it runs: device choice, seeding, determinism, smoke mode.

Every lesson starts with :func:`setup`; every size that costs time goes through :func:`budget`.

>>> import tutorlib.runtime as rt
>>> dev = rt.get_device()            # cuda > mps > cpu, or $TUTORLIB_DEVICE
>>> n = rt.budget(full=5000, smoke=200)
"""

from __future__ import annotations

import os
import random
from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "get_device",
    "seed_everything",
    "set_deterministic",
    "autocast_dtypes",
    "is_smoke",
    "budget",
    "setup",
    "doctor",
]

T = TypeVar("T")

_VALID_DEVICE_TYPES = ("cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """Return the device to compute on: ``prefer`` if given, else ``$TUTORLIB_DEVICE``, else cuda > mps > cpu.

    Asking for a device the machine lacks raises a ``RuntimeError`` that says what is available.

    >>> get_device("cpu")
    device(type='cpu')
    """
    choice = prefer if prefer is not None else os.environ.get("TUTORLIB_DEVICE") or None
    if choice is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(choice)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"unknown device {choice!r}: use one of {', '.join(_VALID_DEVICE_TYPES)} (e.g. 'cuda:0')"
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {choice!r} was requested but this torch has no working CUDA "
            f"(torch {torch.__version__}); unset TUTORLIB_DEVICE or use 'cpu'. "
            "GPU users: install a CUDA build of torch (see README, 'GPU')."
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise RuntimeError(f"device {choice!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    if dev.type == "mps" and not _mps_available():
        raise RuntimeError(f"device {choice!r} was requested but MPS is not available here; use 'cpu'")
    if dev.type not in _VALID_DEVICE_TYPES:
        raise ValueError(f"unsupported device type {dev.type!r}: use one of {', '.join(_VALID_DEVICE_TYPES)}")
    return dev


def seed_everything(seed: int = 0) -> None:
    """Seed Python's ``random``, NumPy and torch (all devices) with ``seed``.

    >>> seed_everything(0); a = torch.rand(1); seed_everything(0); bool(a == torch.rand(1))
    True
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def set_deterministic(on: bool = True) -> None:
    """Switch torch's deterministic algorithms on (slower, bitwise repeatable) or off.

    >>> set_deterministic(True); set_deterministic(False)
    """
    torch.use_deterministic_algorithms(on, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.deterministic = on
        torch.backends.cudnn.benchmark = not on
    if on:
        # cuBLAS needs this workspace setting for deterministic matmuls on CUDA >= 10.2.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def autocast_dtypes(device: str | torch.device | None = None) -> list[torch.dtype]:
    """Lower-precision dtypes that ``torch.autocast`` supports usefully on ``device`` (fastest first).

    CUDA: bf16 on Ampere and newer, always fp16. CPU: bf16. MPS: fp16 (and bf16 on recent torch).

    >>> torch.bfloat16 in autocast_dtypes("cpu")
    True
    """
    dev = get_device(device) if not isinstance(device, torch.device) else device
    if dev.type == "cuda":
        out = []
        if torch.cuda.is_bf16_supported():
            out.append(torch.bfloat16)
        out.append(torch.float16)
        return out
    if dev.type == "mps":
        return [torch.float16, torch.bfloat16]
    return [torch.bfloat16]


def is_smoke() -> bool:
    """True when ``TUTORLIB_SMOKE`` is set to 1/true/yes: lessons then run tiny versions of everything.

    >>> isinstance(is_smoke(), bool)
    True
    """
    return os.environ.get("TUTORLIB_SMOKE", "").strip().lower() in {"1", "true", "yes", "on"}


def budget(full: T, smoke: T) -> T:
    """Return ``smoke`` in smoke mode, else ``full``. Use it for every size that costs time.

    >>> budget(full=10_000, smoke=100) in (10_000, 100)
    True
    """
    return smoke if is_smoke() else full


def setup(seed: int = 0, deterministic: bool = False, quiet: bool = False) -> torch.device:
    """First call of every notebook: seed everything, pick the device, print what was chosen.

    >>> dev = setup(seed=0, quiet=True)
    """
    seed_everything(seed)
    set_deterministic(deterministic)
    dev = get_device()
    if not quiet:
        mode = "SMOKE (tiny sizes, for tests)" if is_smoke() else "full"
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
        print(f"tutorlib: device={dev} ({name}) | torch {torch.__version__} | mode={mode} | seed={seed}")
    return dev


def doctor(quiet: bool = False):  # noqa: ANN201 - returns tutorlib.doctor.DoctorReport
    """Print (and return) the environment report of ``tutorlib doctor``.

    >>> doctor(quiet=True).ok in (True, False)
    True
    """
    from tutorlib.doctor import doctor as _doctor

    return _doctor(quiet=quiet)
