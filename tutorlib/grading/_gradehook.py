"""The grader's side channel inside the kernel: runs a check and writes its result to a file.

The grader (:mod:`tutorlib.grading.grader`) runs, in the learner's kernel,
``__import__("tutorlib.grading._gradehook", fromlist=["x"]).report("ex00_1", "/tmp/…/<nonce>.json")``
with a fresh random file name for every call. Only what arrives in that file counts; nothing the
notebook prints, and not the notebook's own ``check`` name, is trusted.

>>> import json, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "abc.json")
>>> report("ex00_1", path, namespace={})
>>> json.load(open(path))["status"]
'fail'
"""

from __future__ import annotations

import json
import os
import platform
import sys
import traceback
from collections.abc import Mapping
from typing import Any

__all__ = ["report", "run_call", "environment"]


def _write(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def _user_ns() -> Mapping[str, Any]:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise RuntimeError("the grade hook runs inside an IPython kernel only")
    return shell.user_ns


def report(exercise_id: str, path: str, namespace: Mapping[str, Any] | None = None) -> None:
    """Run the registered check of ``exercise_id`` on the kernel's user namespace and write the result to ``path``.

    Never raises (except ``KeyboardInterrupt``, which is how the grader stops a check at its time limit).

    >>> import tempfile, os
    >>> report("ex00_1", os.path.join(tempfile.mkdtemp(), "r.json"), namespace={"make_batch": None})
    """
    try:
        from tutorlib.grading.registry import run_check

        ns = _user_ns() if namespace is None else namespace
        data = run_check(exercise_id, ns).to_dict()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - any failure becomes a reported error
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        data = {"id": exercise_id, "status": "error", "message": f"the check could not run: {last}", "score": 0, "max_score": 0}
    _write(path, data)


def run_call(exercise_id: str, in_prefix: str, out_prefix: str, namespace: Mapping[str, Any] | None = None) -> None:
    """Protocol exercises: load the grader's inputs from ``in_prefix``, run the check's ``call`` on the kernel's
    namespace, and write what the learner's code returned to ``out_prefix`` (safetensors + JSON).

    The result says ``ok`` with the outputs, or ``fail`` / ``not_attempted`` / ``error`` with a message: the
    grader decides a pass itself by running ``compare`` on the outputs; a status written here can only make
    the result worse. Never raises (except ``KeyboardInterrupt``, the grader's time limit).

    >>> import tempfile, os, json, torch
    >>> d = tempfile.mkdtemp()
    >>> from tutorlib.grading import wire, protocol, registry
    >>> check = registry.get_exercise("ex00_2").check
    >>> wire.save(protocol.make_inputs(check, 0), os.path.join(d, "in"))
    >>> run_call("ex00_2", os.path.join(d, "in"), os.path.join(d, "out"), namespace={})
    >>> json.load(open(os.path.join(d, "out.json")))["meta"]["status"]
    'fail'
    """
    meta: dict[str, Any] = {"id": exercise_id}
    try:
        import torch

        from tutorlib import runtime
        from tutorlib.grading import protocol, wire
        from tutorlib.grading.compare import CheckFailed, NotAttempted, preserved_rng
        from tutorlib.grading.registry import get_exercise

        exercise = get_exercise(exercise_id)
        ns = _user_ns() if namespace is None else namespace
        inputs, _ = wire.load(in_prefix)
        device = runtime.get_device()
        threads = torch.get_num_threads()
        try:
            with preserved_rng():
                try:
                    if exercise.single_thread and threads != 1:
                        torch.set_num_threads(1)
                    learner = protocol.Learner(ns, device, tuple(exercise.check.reference))
                    outputs = exercise.check.call(learner, inputs)
                finally:
                    if torch.get_num_threads() != threads:
                        torch.set_num_threads(threads)
            wire.save(outputs, out_prefix, {"id": exercise_id, "status": "ok", "device": str(device)},
                      where="the data your code returned")
            return
        except NotAttempted as exc:
            meta.update(status="not_attempted", message=str(exc))
        except CheckFailed as exc:
            meta.update(status="fail", message=str(exc))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - any failure becomes a reported error
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        meta.update(status="error", message=f"the check could not run in the kernel: {last}")
    from tutorlib.grading.wire import save_meta

    save_meta(out_prefix, meta)


def environment(path: str) -> None:
    """Write the kernel's Python/torch versions and the device the course runs on to ``path``.

    >>> import tempfile, os, json
    >>> p = os.path.join(tempfile.mkdtemp(), "env.json"); environment(p); "python" in json.load(open(p))
    True
    """
    data: dict[str, Any] = {"python": platform.python_version(), "executable": sys.executable}
    try:
        import torch

        data["torch"] = torch.__version__
        from tutorlib import runtime

        dev = runtime.get_device()
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
        data["device"] = f"{dev} ({name})" if name != dev.type else str(dev)
    except BaseException as exc:  # noqa: BLE001
        data.setdefault("torch", "unavailable")
        data["device"] = f"unknown ({type(exc).__name__}: {exc})"
    _write(path, data)
