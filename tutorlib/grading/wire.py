"""Plain data across the grading boundary: tensors in safetensors, everything else in JSON, never pickle.

A check's inputs go from the grader to the learner's kernel, and what the learner's code returned
comes back, as two files with a common prefix: ``PREFIX.safetensors`` (the tensors) and
``PREFIX.json`` (the structure). Only plain data can cross: tensors (sent detached, on the CPU,
contiguous; their device and ``requires_grad`` flag travel as metadata), ``int``, ``float``,
``bool``, ``str``, ``None``, ``torch.dtype``, ``torch.device``, and lists, tuples and dicts of these.
Anything else (a model, a function, a NumPy array) raises
:class:`~tutorlib.grading.compare.CheckFailed` naming where it is and what to return instead.

>>> import torch
>>> back = roundtrip({"x": torch.ones(2), "n": 3, "pair": (1.5, None)})
>>> back["n"], back["pair"], back["x"].tolist()
(3, (1.5, None), [1.0, 1.0])
>>> roundtrip(torch.nn.Linear(2, 2), "the result of make_model()")
Traceback (most recent call last):
...
tutorlib.grading.compare.CheckFailed: the result of make_model() is a Linear (a torch module), which cannot be sent to the grader: return its weights (model.state_dict()) or its outputs instead
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch

from .compare import CheckFailed, describe

__all__ = ["encode", "decode", "roundtrip", "save", "save_meta", "load", "local_device", "MAX_BYTES"]

#: Largest file the grader reads back from a kernel (bytes); larger outputs are an error.
MAX_BYTES = 2 * 2**30
_MAX_DEPTH = 64
_DTYPES = {
    str(t).removeprefix("torch."): t
    for t in (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
              torch.float16, torch.bfloat16, torch.float32, torch.float64)
}
_TAGS = ("__tensor__", "__tuple__", "__dict__", "__dtype__", "__device__")


def _refuse(x: Any, where: str) -> CheckFailed:
    if isinstance(x, torch.nn.Module):
        return CheckFailed(f"{where} is a {type(x).__name__} (a torch module), which cannot be sent to the grader: "
                           "return its weights (model.state_dict()) or its outputs instead")
    if isinstance(x, np.ndarray):
        return CheckFailed(f"{where} is a NumPy array, expected a torch.Tensor: convert it with torch.from_numpy(...)")
    if isinstance(x, np.generic):
        kind = "int" if isinstance(x, np.integer) else "bool" if isinstance(x, np.bool_) else "float"
        return CheckFailed(f"{where} is a NumPy {type(x).__name__}, expected a Python {kind}: wrap it in {kind}(...)")
    if callable(x):
        return CheckFailed(f"{where} is a function or other callable ({type(x).__name__}), which cannot be sent to the "
                           "grader: return the values it computes instead")
    return CheckFailed(f"{where} is {describe(x)}, which cannot be sent to the grader: return tensors, Python numbers, "
                       "str, bool, None, or lists/tuples/dicts of them")


def encode(obj: Any, where: str = "the result") -> tuple[Any, dict[str, torch.Tensor]]:
    """Split ``obj`` into a JSON-ready structure and a dict of plain CPU tensors (for safetensors).

    ``where`` names ``obj`` in error messages (``the result of f()[2]``).

    >>> js, ts = encode([torch.zeros(2), 1])
    >>> js[0]["__tensor__"], list(ts)
    ('t0', ['t0'])
    """
    tensors: dict[str, torch.Tensor] = {}

    def label(path: str) -> str:
        return f"{where} at {path}" if path else where

    def walk(x: Any, at: str, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise CheckFailed(f"{label(at)} is nested more than {_MAX_DEPTH} levels deep: return a flatter structure")
        if x is None or type(x) in (bool, str):
            return x
        if isinstance(x, (np.generic, np.ndarray)):
            raise _refuse(x, label(at))
        if isinstance(x, bool):
            return bool(x)
        if isinstance(x, int):
            return int(x)
        if isinstance(x, float):
            return float(x)
        if isinstance(x, str):
            return str(x)
        if isinstance(x, torch.dtype):
            return {"__dtype__": str(x).removeprefix("torch.")}
        if isinstance(x, torch.device):
            return {"__device__": str(x)}
        if isinstance(x, torch.Tensor):
            t = x.detach()
            name = str(t.dtype).removeprefix("torch.")
            if name not in _DTYPES:
                raise CheckFailed(f"{label(at)} has dtype {t.dtype}, which cannot be sent to the grader: convert it with .float()")
            entry = {"__tensor__": None, "shape": list(t.shape), "dtype": name, "device": str(t.device),
                     "grad": bool(x.requires_grad)}
            if t.device.type != "meta":
                key = f"t{len(tensors)}"
                plain = t.to("cpu").contiguous().clone()
                if type(plain) is not torch.Tensor:
                    plain = plain.as_subclass(torch.Tensor)
                tensors[key] = plain
                entry["__tensor__"] = key
            return entry
        if isinstance(x, tuple):
            return {"__tuple__": [walk(v, f"{at}[{i}]", depth + 1) for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [walk(v, f"{at}[{i}]", depth + 1) for i, v in enumerate(x)]
        if isinstance(x, dict):
            items = []
            for k, v in x.items():
                if not (k is None or type(k) in (str, int, float, bool)):
                    raise CheckFailed(f"{label(at)} has a key of type {type(k).__name__}: use str or int keys")
                items.append([k, walk(v, f"{at}[{k!r}]", depth + 1)])
            return {"__dict__": items}
        raise _refuse(x, label(at))

    return walk(obj, "", 0), tensors


def local_device(name: str) -> torch.device:
    """The device called ``name`` if this process has it, else the CPU.

    >>> local_device("meta"), local_device("xpu:7")
    (device(type='meta'), device(type='cpu'))
    """
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        return torch.device("cpu")
    if dev.type in ("cpu", "meta"):
        return dev
    if dev.type == "cuda" and torch.cuda.is_available() and (dev.index or 0) < torch.cuda.device_count():
        return dev
    mps = getattr(torch.backends, "mps", None)
    if dev.type == "mps" and mps is not None and mps.is_available():
        return dev
    return torch.device("cpu")


def decode(js: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Rebuild what :func:`encode` split; tensors go back to their device when it exists here (else the CPU).

    >>> decode(*encode({"a": (1, torch.tensor([2.0]))}))["a"][1]
    tensor([2.])
    """

    def walk(x: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH + 2:
            raise ValueError("the data is nested too deeply")
        if isinstance(x, list):
            return [walk(v, depth + 1) for v in x]
        if not isinstance(x, dict):
            if x is None or isinstance(x, (bool, int, float, str)):
                return x
            raise ValueError(f"unexpected JSON value {type(x).__name__}")
        tag = [k for k in x if k in _TAGS]
        if len(tag) != 1:
            raise ValueError(f"unexpected JSON object with keys {sorted(x)[:5]}")
        tag = tag[0]
        if tag == "__tuple__":
            return tuple(walk(v, depth + 1) for v in x[tag])
        if tag == "__dict__":
            return {k: walk(v, depth + 1) for k, v in x[tag]}
        if tag == "__dtype__":
            return _DTYPES[x[tag]]
        if tag == "__device__":
            return torch.device(x[tag])
        dtype = _DTYPES[x["dtype"]]
        shape = [int(s) for s in x["shape"]]
        dev = local_device(str(x.get("device", "cpu")))
        if x[tag] is None:
            t = torch.empty(shape, dtype=dtype, device="meta")
        else:
            t = tensors[x[tag]]
            if t.dtype != dtype or list(t.shape) != shape:
                raise ValueError(f"tensor {x[tag]} does not match its description")
            t = t.to(dev)
        if x.get("grad") and t.is_floating_point():
            t.requires_grad_(True)
        return t

    return walk(js, 0)


def roundtrip(obj: Any, where: str = "the result") -> Any:
    """``decode(encode(obj))`` through JSON text, exactly as if ``obj`` had crossed the boundary.

    >>> roundtrip([1, (2.5, "a")])
    [1, (2.5, 'a')]
    """
    js, tensors = encode(obj, where)
    return decode(json.loads(json.dumps(js)), tensors)


def save(obj: Any, prefix: str, meta: dict[str, Any] | None = None, where: str = "the result") -> None:
    """Write ``obj`` to ``PREFIX.safetensors`` and ``PREFIX.json`` (with ``meta`` alongside); JSON last, atomically.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x"); save({"a": torch.ones(1)}, p, {"status": "ok"})
    >>> load(p)[1]["status"], load(p)[0]["a"].tolist()
    ('ok', [1.0])
    """
    from safetensors.torch import save_file

    js, tensors = encode(obj, where)
    save_file(tensors, f"{prefix}.safetensors")
    text = json.dumps({"meta": meta or {}, "data": js})
    tmp = f"{prefix}.json.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, f"{prefix}.json")


def save_meta(prefix: str, meta: dict[str, Any]) -> None:
    """Write only ``PREFIX.json`` with ``meta`` and no data (a status without outputs)."""
    tmp = f"{prefix}.json.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"meta": meta, "data": None}, fh)
    os.replace(tmp, f"{prefix}.json")


def load(prefix: str) -> tuple[Any, dict[str, Any]]:
    """Read what :func:`save` wrote: ``(obj, meta)``. Raises ``ValueError`` for anything malformed or too large."""
    from safetensors.torch import load_file

    path = f"{prefix}.json"
    if os.path.getsize(path) > MAX_BYTES:
        raise ValueError(f"{path} is larger than {MAX_BYTES} bytes")
    with open(path, encoding="utf-8") as fh:
        raw = json.load(fh)
    if not isinstance(raw, dict) or not isinstance(raw.get("meta"), dict):
        raise ValueError(f"{path} is not a grading data file")
    if raw.get("data") is None:
        return None, raw["meta"]
    st = f"{prefix}.safetensors"
    if os.path.getsize(st) > MAX_BYTES:
        raise ValueError(f"{st} is larger than {MAX_BYTES} bytes")
    return decode(raw["data"], load_file(st)), raw["meta"]
