"""Atomic, pickle-free training checkpoints: safetensors weights + JSON state, in one folder per step.

A checkpoint folder is written under a temporary name and renamed into place, then the
``latest`` pointer is replaced atomically, so a kill at any moment leaves the previous
checkpoint intact. Optimizer/scheduler state is saved with ``torch.save`` and loaded with
``weights_only=True`` (no arbitrary unpickling).

>>> import tempfile, torch
>>> from tutorlib.train.checkpoint import save_checkpoint, load_checkpoint
>>> m = torch.nn.Linear(2, 2); d = tempfile.mkdtemp()
>>> path = save_checkpoint(d, m, step=3, state={"epoch": 0})
>>> load_checkpoint(path, m)["state"]["epoch"]
0
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tutorlib.atomic import atomic_write_text

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "CheckpointError", "rng_state", "set_rng_state"]

WEIGHTS = "model.safetensors"
OPTIM = "optimizer.pt"
STATE = "state.json"
LATEST = "latest"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or corrupt."""


def rng_state() -> dict[str, Any]:
    """All random states (Python, NumPy, torch CPU and CUDA) in a JSON/torch-safe form.

    >>> sorted(rng_state())
    ['cuda', 'numpy', 'python', 'torch']
    """
    np_state = np.random.get_state()
    py = random.getstate()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned.

    >>> s = rng_state(); a = torch.rand(1); set_rng_state(s); bool(torch.rand(1) == a)
    True
    """
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def save_checkpoint(directory: str | Path, model: nn.Module, step: int, state: dict[str, Any] | None = None,
                    optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
                    scaler: Any = None, keep_last: int = 2) -> Path:
    """Write ``directory/step-NNNNNNNN`` atomically and point ``directory/latest`` at it; keep the newest ``keep_last``.

    >>> import tempfile; p = save_checkpoint(tempfile.mkdtemp(), torch.nn.Linear(1, 1), step=1); p.name
    'step-00000001'
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=directory, prefix=f".tmp-{final.name}-"))
    try:
        weights = {k: v.detach().contiguous().cpu().clone() for k, v in _unwrap(model).state_dict().items()}
        save_file(weights, str(tmp / WEIGHTS), metadata={"step": str(step)})
        extra = {
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
            "rng": rng_state(),
        }
        torch.save(extra, tmp / OPTIM)
        (tmp / STATE).write_text(json.dumps({"step": step, "state": state or {}}, indent=1), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(directory / LATEST, final.name)
    olds = sorted(p for p in directory.glob("step-*") if p.is_dir() and p != final)
    for old in olds[: max(0, len(olds) - (keep_last - 1))]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The newest complete checkpoint folder in ``directory`` (via ``latest``), or None if there is none.

    >>> import tempfile; latest_checkpoint(tempfile.mkdtemp()) is None
    True
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None
    pointer = directory / LATEST
    if pointer.exists():
        cand = directory / pointer.read_text(encoding="utf-8").strip()
        if (cand / STATE).exists():
            return cand
    complete = sorted(p for p in directory.glob("step-*") if (p / STATE).exists())
    return complete[-1] if complete else None


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None, scaler: Any = None, restore_rng: bool = False) -> dict[str, Any]:
    """Load weights (and optionally optimizer, scheduler, scaler, RNG) from a checkpoint folder or its parent.

    Returns ``{"step": int, "state": dict}``. Raises :class:`CheckpointError` with the fix when the
    folder is missing, incomplete, corrupt or made for a different model.

    >>> import tempfile; d = tempfile.mkdtemp(); m = torch.nn.Linear(1, 1)
    >>> _ = save_checkpoint(d, m, step=5); load_checkpoint(d, m)["step"]
    5
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir() and not (path / STATE).exists():
        found = latest_checkpoint(path)
        if found is None:
            raise CheckpointError(f"no checkpoint in {path}: train first, or point at a folder containing {STATE}")
        path = found
    for name in (WEIGHTS, STATE):
        if not (path / name).exists():
            raise CheckpointError(f"checkpoint {path} is incomplete ({name} missing): delete it and resume from an older one")
    try:
        meta = json.loads((path / STATE).read_text(encoding="utf-8"))
        weights = load_file(str(path / WEIGHTS))
    except (json.JSONDecodeError, SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt ({exc}); delete it and resume from an older one") from exc
    target = _unwrap(model)
    try:
        target.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not fit this model (different architecture?): {str(exc)[:300]}") from exc
    wants_extra = optimizer is not None or scheduler is not None or scaler is not None or restore_rng
    if wants_extra:
        if not (path / OPTIM).exists():
            raise CheckpointError(f"checkpoint {path} has no {OPTIM}: it can restore weights but not resume training")
        try:
            extra = torch.load(path / OPTIM, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
            raise CheckpointError(f"checkpoint {path}/{OPTIM} is corrupt ({exc}); delete the folder and resume from an older one") from exc
        if optimizer is not None and extra.get("optimizer") is not None:
            optimizer.load_state_dict(extra["optimizer"])
        if scheduler is not None and extra.get("scheduler") is not None:
            scheduler.load_state_dict(extra["scheduler"])
        if scaler is not None and extra.get("scaler") is not None:
            scaler.load_state_dict(extra["scaler"])
        if restore_rng:
            set_rng_state(extra["rng"])
    return {"step": int(meta["step"]), "state": meta.get("state", {}), "path": str(path)}
