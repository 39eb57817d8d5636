"""Grade whole exercise notebooks: each in a fresh kernel, each exercise with a time limit.

How a notebook is graded:

1. The file is read (never written) and copied into a temporary folder, where a fresh IPython
   kernel starts with ``TUTORLIB_SMOKE=1``. Cells run in notebook order; the notebook's own check
   cells (metadata ``{"tutorlib": {"check": id}}``) are skipped.
2. Right after the *last* answer cell of each exercise (metadata ``{"tutorlib": {"exercise": id}}``)
   the grader checks it. For a protocol check (:mod:`.protocol`) it makes the inputs in its own process
   with a seed picked for this run (:mod:`secrets`, recorded in the report), writes them as safetensors
   + JSON (:mod:`.wire`) to its private folder, runs only the check's ``call`` in the kernel
   (``_gradehook.run_call``), which writes the learner's outputs to a fresh random file name, reads them
   back and runs ``compare`` here. A status the kernel reports can only fail the exercise. Older checks
   (``@register``) still run whole in the kernel (``_gradehook.report``) until they are converted.
   Before running anything, the grader reads the notebook's source (:mod:`.static`): a notebook that
   imports the grading code fails every exercise, an answer cell that uses the exercise's ``reference``
   (the library's own implementation) fails that exercise, each with a message saying so.
3. The answer cell and its check share the exercise's time limit. At the limit the kernel is
   interrupted, and killed if it does not stop. A kernel that dies (``os._exit``, memory above the
   limit, ``exit()``) is restarted and the cells that had run without error are run again, so later
   exercises are still graded. ``input()`` raises inside the kernel; output is counted, never kept.
   With a CPU-time limit (``cpu_limit``), a notebook whose code uses more CPU than that in its kernel,
   over all cells and restarts, is stopped for good: the exercises not yet graded are ``crashed``.
4. Exercises whose answer cell is gone are checked once more at the end of the notebook; they pass
   if the learner's objects exist and are right, else they are ``missing``.
5. Cells outside the exercises that raise (or time out, or kill the kernel) are listed in the report
   (``cell_errors``): the rest still runs, but a teacher sees the notebook did not run cleanly.

An exercise on the protocol scores only when ``compare``, in the grader's process, passes the plain data
the kernel sent back; nothing the notebook prints or patches inside its kernel can make that pass. This
guards against mistakes and tampering with the grading code in the kernel, **not** against a hostile
notebook in general: its code runs with your permissions and could, say, edit files of the installed
library. It is not a sandbox; grade untrusted submissions inside a container or VM.

>>> from tutorlib.grading.grader import grade_notebook
>>> report = grade_notebook("solutions/00_welcome.ipynb")          # doctest: +SKIP
>>> report.total, report.max_total                                 # doctest: +SKIP
(7, 7)
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import psutil
import torch
from jupyter_client.manager import KernelManager

from . import protocol, registry, static, wire
from .nbexec import NUDGE_S

__all__ = ["NotebookError", "GradingAborted", "ExerciseResult", "CellError", "NotebookReport", "grade_notebook", "grade_paths",
           "default_memory_limit", "expand_paths"]

_LESSON_FROM_NAME = re.compile(r"^(\d{2})_")
_GRACE_S = 3.0  # how long an interrupted cell may take to stop before the kernel is killed
_POLL_S = 0.05
# CPython 3.11's ast.parse can fail with "SystemError: AST constructor recursion depth mismatch" when the
# garbage collector runs finalizers in the middle of it (CPython issue gh-106905), which became likely once
# `tutorlib grade -j N` graded notebooks in threads: the source scan runs with the collector paused, one at a time.
_AST_LOCK = threading.Lock()


class NotebookError(Exception):
    """The file cannot be graded: missing, not JSON, not a notebook, or without exercises."""


class GradingAborted(Exception):
    """Grading was stopped from outside (``abort`` was set, e.g. on Ctrl-C): the notebook has no result."""


@dataclass
class ExerciseResult:
    """One exercise's line in the report."""

    id: str
    status: str
    score: float
    max_score: float
    seconds: float
    message: str
    seed: int | None = None  # the inputs' seed (protocol checks); None for checks that run in the kernel
    hints: int = 0  # hints the notebook's saved outputs show as seen, for information

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (seconds rounded to ms)."""
        return {
            "id": self.id,
            "status": self.status,
            "score": self.score,
            "max_score": self.max_score,
            "seconds": round(self.seconds, 3),
            "message": self.message,
            "seed": self.seed,
            "hints": self.hints,
        }


@dataclass
class CellError:
    """A cell that is not an exercise's answer and did not run cleanly (it raised, timed out or killed the kernel)."""

    index: int  # the cell's position in the notebook (0-based, markdown cells counted)
    source: str  # its first non-empty line
    error: str  # "ZeroDivisionError: division by zero"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"cell": self.index, "source": self.source, "error": self.error}


@dataclass
class NotebookReport:
    """The grading of one notebook (``error`` is set, and ``exercises`` empty, when it could not be graded)."""

    path: str
    sha256: str = ""
    lesson: str = ""
    exercises: list[ExerciseResult] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    kernel_restarts: int = 0
    error: str | None = None
    seed: int | None = None  # the run's seed; each protocol exercise's inputs use protocol.exercise_seed(seed, id)
    cell_errors: list[CellError] = field(default_factory=list)

    @property
    def total(self) -> float:
        """Points scored."""
        return sum(e.score for e in self.exercises)

    @property
    def max_total(self) -> float:
        """Points available."""
        return sum(e.max_score for e in self.exercises)

    def to_dict(self) -> dict[str, Any]:
        """Everything in the report as JSON-ready data; :meth:`from_dict` reads it back.

        >>> r = NotebookReport("a.ipynb", exercises=[ExerciseResult("ex00_1", "pass", 1, 1, 0.25, "passed")])
        >>> NotebookReport.from_dict(r.to_dict()) == r
        True
        """
        return {
            "path": self.path, "sha256": self.sha256, "lesson": self.lesson, "error": self.error, "seed": self.seed,
            "environment": dict(self.environment), "seconds": self.seconds, "kernel_restarts": self.kernel_restarts,
            "exercises": [{**e.to_dict(), "seconds": e.seconds} for e in self.exercises],
            "cell_errors": [e.to_dict() for e in self.cell_errors],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NotebookReport:
        """The report :meth:`to_dict` wrote."""
        return cls(
            path=str(data["path"]), sha256=str(data.get("sha256", "")), lesson=str(data.get("lesson", "")),
            exercises=[ExerciseResult(str(e["id"]), str(e["status"]), float(e["score"]), float(e["max_score"]), float(e["seconds"]),
                                      str(e["message"]), e.get("seed"), int(e.get("hints", 0))) for e in data.get("exercises", [])],
            environment={str(k): str(v) for k, v in data.get("environment", {}).items()},
            seconds=float(data.get("seconds", 0.0)), kernel_restarts=int(data.get("kernel_restarts", 0)),
            error=data.get("error"), seed=data.get("seed"),
            cell_errors=[CellError(int(c["cell"]), str(c["source"]), str(c["error"])) for c in data.get("cell_errors", [])],
        )

    def result(self, exercise_id: str) -> ExerciseResult:
        """The result of one exercise by id."""
        for e in self.exercises:
            if e.id == exercise_id:
                return e
        raise KeyError(f"{exercise_id} is not in the report of {self.path}; it has {[e.id for e in self.exercises]}")


def default_memory_limit() -> int:
    """Bytes a graded kernel may use before it is stopped: 75 % of this machine's memory.

    >>> default_memory_limit() > 0
    True
    """
    return int(psutil.virtual_memory().total * 0.75)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes.

    >>> len(sha256_file(__file__))
    64
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- the kernel


@dataclass
class _Outcome:
    status: str  # ok | error | timeout | died
    seconds: float
    ename: str = ""
    evalue: str = ""
    detail: str = ""


class _Kernel:
    """One IPython kernel driven over jupyter_client, with time limits, a memory watchdog and restarts."""

    def __init__(self, cwd: str, env: dict[str, str], memory_limit: int, log_path: str,
                 cpu_limit: float | None = None, abort: threading.Event | None = None) -> None:
        self.cwd, self.env, self.memory_limit, self.log_path = cwd, env, memory_limit, log_path
        self.cpu_limit, self.abort = cpu_limit, abort
        self.km: KernelManager | None = None
        self.kc: Any = None
        self._log: Any = None
        self._proc: psutil.Process | None = None
        self._next_mem_check = 0.0
        # CPU time of the notebook's kernels since each was ready (kernel start-up is not counted), over restarts.
        self.cpu_spent = 0.0
        self._cpu_ready = 0.0  # the current kernel's CPU time when it was ready
        self._cpu_seen = 0.0  # its CPU time when last measured
        self._cpu_soft = 0.0  # its CPU time at which the backstop rlimit stops it
        self.cpu_exhausted = False

    @property
    def cpu_message(self) -> str:
        """Why the notebook stopped running once its kernel used up the CPU-time limit."""
        return (f"the notebook used {self.cpu_used():.1f} s of CPU time, over its CPU-time limit of {self.cpu_limit:g} s "
                "(--cpu-limit), and its kernel was stopped")

    def _cpu_now(self) -> float:
        """CPU seconds (user + system) of the kernel process and its children, alive or waited for."""
        if self._proc is None:
            return self._cpu_seen
        try:
            t = self._proc.cpu_times()
            total = t.user + t.system + t.children_user + t.children_system
            for child in self._proc.children(recursive=True):
                try:
                    c = child.cpu_times()
                    total += c.user + c.system
                except psutil.Error:
                    pass
        except psutil.Error:
            return self._cpu_seen
        self._cpu_seen = max(self._cpu_seen, total)
        return self._cpu_seen

    def cpu_used(self) -> float:
        """CPU seconds the notebook's code has used in its kernels so far."""
        return self.cpu_spent + max(0.0, self._cpu_seen - self._cpu_ready)

    def _over_cpu_limit(self) -> bool:
        if self.cpu_limit is None or self._proc is None:
            return False
        self._cpu_now()
        if self.cpu_used() > self.cpu_limit:
            self.cpu_exhausted = True
        return self.cpu_exhausted

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        if os.name == "posix":
            # Unix sockets in the grader's private folder: no TCP ports open to other users of the machine.
            self.km = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(os.path.dirname(self.log_path), "k"))
        else:  # pragma: no cover - Windows
            self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(
            env=self.env,
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            extra_arguments=["--HistoryManager.hist_file=:memory:"],
        )
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=120)
        except RuntimeError as exc:
            raise RuntimeError(f"the grading kernel did not start: {exc}; see {self.log_path}") from exc
        pid = getattr(self.km.provisioner, "pid", None)
        self._proc = psutil.Process(pid) if pid else None
        self._cpu_seen = 0.0
        self._cpu_ready = self._cpu_now()
        if self.cpu_limit is not None and not self.cpu_exhausted and self._proc is not None and hasattr(psutil, "RLIMIT_CPU"):
            # A backstop the kernel cannot outrun if the watcher in execute() is not looking (between cells):
            # the kernel process gets SIGXCPU a little after its share of the limit is spent.
            soft = int(self._cpu_ready + max(0.0, self.cpu_limit - self.cpu_spent)) + 2
            try:
                self._proc.rlimit(psutil.RLIMIT_CPU, (soft, soft + 1))
                self._cpu_soft = float(soft)
            except (psutil.Error, OSError, ValueError):
                pass

    def stop(self) -> None:
        if self._proc is not None:
            self._cpu_now()
            self.cpu_spent += max(0.0, self._cpu_seen - self._cpu_ready)
            self._cpu_ready = self._cpu_seen = 0.0
        if self.kc is not None:
            try:
                self.kc.stop_channels()
            except Exception:  # noqa: BLE001
                pass
        if self.km is not None:
            try:
                self.km.shutdown_kernel(now=True)
            except Exception:  # noqa: BLE001 - kill what is left by hand
                if self._proc is not None:
                    try:
                        self._proc.kill()
                    except psutil.Error:
                        pass
        if self._log is not None:
            self._log.close()
        self.km, self.kc, self._proc, self._log = None, None, None, None

    def alive(self) -> bool:
        return self.km is not None and bool(self.km.is_alive())

    def exit_code(self) -> int | None:
        proc = getattr(getattr(self.km, "provisioner", None), "process", None)
        return proc.poll() if proc is not None else None

    def _memory(self) -> int:
        if self._proc is None:
            return 0
        try:
            total = self._proc.memory_info().rss
            for child in self._proc.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            return total
        except psutil.Error:
            return 0

    def _drain_iopub(self, msg_id: str, out: dict[str, Any]) -> None:
        while True:
            try:
                msg = self.kc.iopub_channel.get_msg(timeout=0)
            except queue.Empty:
                return
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg.get("msg_type"), msg.get("content", {})
            if kind == "stream":
                out["bytes"] += len(content.get("text", ""))
            elif kind == "error":
                out["ename"], out["evalue"] = content.get("ename", ""), content.get("evalue", "")

    def execute(self, code: str, timeout: float, *, silent: bool = False, counted: bool = True) -> _Outcome:
        """Run ``code``; stop it at ``timeout`` seconds (interrupt, then kill); notice death, memory and CPU-time overuse.

        ``counted=False`` (the grader's own code, after the notebook) is not held to the CPU-time limit.
        """
        start = time.monotonic()
        if self.abort is not None and self.abort.is_set():
            raise GradingAborted("grading was stopped")
        if counted and self.cpu_exhausted:
            return _Outcome("died", 0.0, detail=self.cpu_message)
        if not self.alive():
            return _Outcome("died", 0.0, detail=self._death_detail())
        msg_id = self.kc.execute(code, silent=silent, store_history=not silent, allow_stdin=False, stop_on_error=False)
        deadline = start + max(timeout, 0.1)
        interrupted_at: float | None = None
        out: dict[str, Any] = {"bytes": 0, "ename": "", "evalue": ""}
        next_nudge = start + NUDGE_S
        while True:
            self._drain_iopub(msg_id, out)
            try:
                reply = self.kc.shell_channel.get_msg(timeout=_POLL_S)
            except queue.Empty:
                reply = None
            now = time.monotonic()
            if reply is not None and reply.get("parent_header", {}).get("msg_id") == msg_id:
                self._drain_iopub(msg_id, out)
                content = reply.get("content", {})
                if interrupted_at is not None:
                    return _Outcome("timeout", now - start, detail="interrupted")
                if content.get("status") == "ok":
                    return _Outcome("ok", now - start)
                return _Outcome(
                    "error",
                    now - start,
                    ename=content.get("ename") or out["ename"] or "Error",
                    evalue=(content.get("evalue") or out["evalue"] or "")[:500],
                )
            if not self.alive():
                return _Outcome("died", now - start, detail=self._death_detail())
            if self.abort is not None and self.abort.is_set():
                self.stop()
                raise GradingAborted("grading was stopped")
            if now >= next_nudge:
                self.kc.kernel_info()  # harmless; nbexec's clients do the same while a cell runs
                next_nudge = now + NUDGE_S
            if now >= self._next_mem_check:
                self._next_mem_check = now + 0.1
                used = self._memory()
                if used > self.memory_limit:
                    self.stop()
                    return _Outcome(
                        "died",
                        now - start,
                        detail=f"it used {used / 2**30:.1f} GiB of memory, over the limit of {self.memory_limit / 2**30:.1f} GiB, and was stopped",
                    )
                if counted and self._over_cpu_limit():
                    self.stop()
                    return _Outcome("died", now - start, detail=self.cpu_message)
            if interrupted_at is None and now >= deadline:
                try:
                    self.km.interrupt_kernel()  # type: ignore[union-attr]
                except Exception:  # noqa: BLE001
                    pass
                interrupted_at = now
            elif interrupted_at is not None and now >= interrupted_at + _GRACE_S:
                self.stop()
                return _Outcome("timeout", now - start, detail="killed")

    def _death_detail(self) -> str:
        code = self.exit_code()
        if code is None:
            return "the kernel died"
        if self.cpu_limit is not None and code == -signal.SIGXCPU:  # the backstop set in start()
            self._cpu_seen = max(self._cpu_seen, self._cpu_soft)  # what it had used when the signal came
            self.cpu_exhausted = True
            return self.cpu_message
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"the kernel was killed by {name} (out of memory?)"
        return f"the kernel exited with code {code} (os._exit, exit() or a crash in native code)"


# --------------------------------------------------------------------------- reading the notebook


@dataclass
class _Cell:
    index: int
    source: str
    exercise: str | None = None
    is_check: bool = False


def _tutorlib_meta(cell: Any) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("tutorlib", {})
    return meta if isinstance(meta, dict) else {}


def load_notebook(path: str | os.PathLike[str]) -> Any:
    """Read a notebook, or raise :class:`NotebookError` saying why it cannot be graded.

    >>> load_notebook("/no/such/file.ipynb")
    Traceback (most recent call last):
    ...
    tutorlib.grading.grader.NotebookError: /no/such/file.ipynb: no such file
    """
    p = Path(path)
    if not p.is_file():
        raise NotebookError(f"{path}: no such file")
    try:
        raw = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookError(f"{path}: cannot be read as UTF-8 text ({exc}); is it a notebook?") from exc
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise NotebookError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); the file is corrupt: "
            "open it in JupyterLab or restore it from a checkpoint (.ipynb_checkpoints) or backup"
        ) from exc
    if not isinstance(data, dict) or "cells" not in data or "nbformat" not in data:
        raise NotebookError(f"{path}: valid JSON but not a Jupyter notebook (no 'cells'/'nbformat' keys)")
    try:
        nb = nbformat.reads(raw, as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises several types
        raise NotebookError(f"{path}: not a readable Jupyter notebook: {exc}") from exc
    return nb


def _cells(nb: Any) -> list[_Cell]:
    out = []
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        meta = _tutorlib_meta(cell)
        exercise = meta.get("exercise") if isinstance(meta.get("exercise"), str) else None
        is_check = ("check" in meta or "hint" in meta) and exercise is None
        out.append(_Cell(i, cell.get("source", ""), exercise=exercise, is_check=is_check))
    return out


def _lesson_of(nb: Any, cells: Sequence[_Cell], path: Path) -> str | None:
    meta = nb.metadata.get("tutorlib", {}) if isinstance(nb.metadata.get("tutorlib", {}), dict) else {}
    lesson = meta.get("lesson")
    if isinstance(lesson, str) and re.fullmatch(r"\d{2}", lesson):
        return lesson
    for cell in cells:
        m = re.match(r"^ex(\d{2})_\d+$", cell.exercise or "")
        if m:
            return m.group(1)
    m = _LESSON_FROM_NAME.match(path.name)
    return m.group(1) if m else None


# --------------------------------------------------------------------------- grading


def _kernel_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env["TUTORLIB_SMOKE"] = "1"
    env.setdefault("MPLBACKEND", "Agg")
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    # The kernel imports the same tutorlib as the grader, installed or not.
    root = str(Path(registry.__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    if extra:
        env.update(extra)
    return env


class _Run:
    """State of grading one notebook."""

    def __init__(self, cells: list[_Cell], workdir: str, secret_dir: str, kernel: _Kernel, cell_timeout: float) -> None:
        self.cells, self.workdir, self.secret_dir, self.kernel = cells, workdir, secret_dir, kernel
        self.cell_timeout = cell_timeout
        self.replay: list[tuple[str, float]] = []  # cells that ran without error, to re-run after a restart
        self.restarts = 0

    def restart(self) -> str:
        """Start a new kernel and re-run the cells that had succeeded; returns a note for the message."""
        if self.kernel.cpu_exhausted:  # no restart: the notebook has used up its CPU time
            self.kernel.stop()
            return "the remaining cells are not run"
        self.kernel.stop()
        self.kernel.start()
        self.restarts += 1
        total = len(self.replay)
        for n, (source, limit) in enumerate(self.replay):
            outcome = self.kernel.execute(source, limit)
            if outcome.status == "died" or (outcome.status == "timeout" and not self.kernel.alive()):
                self.kernel.stop()
                if self.kernel.cpu_exhausted:
                    return "the kernel was restarted, but re-running earlier cells used up the notebook's CPU time"
                self.kernel.start()
                self.replay = self.replay[:n]
                return (f"the kernel was restarted, but re-running earlier cell {n + 1} of {total} "
                        "stopped it again, so later exercises may fail")
        return f"the kernel was restarted and the {len(self.replay)} cells that had run before were re-run"

    def run_cell(self, cell: _Cell, limit: float) -> tuple[_Outcome, str]:
        outcome = self.kernel.execute(cell.source, limit)
        note = ""
        if outcome.status == "ok":
            self.replay.append((cell.source, limit))
        elif outcome.status == "died" or (outcome.status == "timeout" and not self.kernel.alive()):
            note = self.restart()
        return outcome, note

    def report(self, exercise_id: str, limit: float) -> tuple[_Outcome, dict[str, Any] | None, str]:
        path = os.path.join(self.secret_dir, f"{secrets.token_hex(16)}.json")
        code = f"__import__('tutorlib.grading._gradehook', fromlist=['report']).report({exercise_id!r}, {path!r})"
        outcome = self.kernel.execute(code, limit, silent=True)
        note = ""
        if outcome.status == "died" or (outcome.status == "timeout" and not self.kernel.alive()):
            note = self.restart()
        data = None
        if outcome.status == "ok" and os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as fh:
                    data = json.load(fh)
            except (OSError, json.JSONDecodeError):
                data = None
            finally:
                os.remove(path)
        return outcome, data, note


    def protocol_check(self, exercise: registry.Exercise, limit: float, seed: int) -> tuple[_Outcome, dict[str, Any] | None, str]:
        """Inputs made here, ``call`` run in the kernel, ``compare`` run here: the result's status is decided here."""
        check = exercise.check
        try:
            inputs = protocol.make_inputs(check, seed)
        except Exception as exc:  # noqa: BLE001 - a bug in the check, not in the answer
            return _Outcome("ok", 0.0), {"id": exercise.id, "status": "error",
                                         "message": f"the check could not make its inputs ({type(exc).__name__}: {exc})"}, ""
        in_prefix = os.path.join(self.secret_dir, secrets.token_hex(16))
        out_prefix = os.path.join(self.secret_dir, secrets.token_hex(16))
        wire.save(inputs, in_prefix)
        code = (f"__import__('tutorlib.grading._gradehook', fromlist=['run_call']).run_call("
                f"{exercise.id!r}, {in_prefix!r}, {out_prefix!r})")
        outcome = self.kernel.execute(code, limit, silent=True)
        note = ""
        if outcome.status == "died" or (outcome.status == "timeout" and not self.kernel.alive()):
            note = self.restart()
        data = None
        try:
            if outcome.status == "ok" and os.path.isfile(f"{out_prefix}.json"):
                try:
                    outputs, meta = wire.load(out_prefix)
                except Exception as exc:  # noqa: BLE001 - whatever the kernel wrote, it is not a pass
                    data = {"id": exercise.id, "status": "error",
                            "message": f"the grader could not read what the kernel sent back ({type(exc).__name__}: {exc})"}
                else:
                    data = {"id": exercise.id, **_decide(exercise, inputs, outputs, meta)}
        finally:
            for suffix in (".json", ".safetensors", ".json.tmp"):
                for prefix in (in_prefix, out_prefix):
                    try:
                        os.remove(prefix + suffix)
                    except OSError:
                        pass
        return outcome, data, note


def _decide(exercise: registry.Exercise, inputs: Any, outputs: Any, meta: dict[str, Any]) -> dict[str, str]:
    """The grader's decision on what the kernel sent: only ``compare`` run here can pass; a kernel status only fails."""
    status = meta.get("status")
    if meta.get("id") != exercise.id:
        return {"status": "error", "message": "the kernel's answer is for another exercise (was the grading hook tampered with?)"}
    if status in ("fail", "not_attempted", "error"):
        return {"status": str(status), "message": str(meta.get("message", ""))[:1000]}
    if status != "ok":
        return {"status": "error", "message": "the kernel sent back no result (was the grading hook tampered with?)"}
    threads = torch.get_num_threads()
    try:
        if exercise.single_thread and threads != 1:
            torch.set_num_threads(1)
        status, message = protocol.judge(exercise.check, inputs, outputs, wire.local_device(str(meta.get("device", "cpu"))))
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return {"status": status, "message": message}


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _from_check(exercise: registry.Exercise, data: dict[str, Any] | None, outcome: _Outcome, seconds: float, note: str, limit: float) -> ExerciseResult:
    pts = exercise.points
    if outcome.status == "timeout":
        how = "interrupted" if outcome.detail == "interrupted" else "stopped (it ignored the interrupt)"
        return ExerciseResult(exercise.id, "timeout", 0, pts, seconds,
                              _join(f"the check did not finish within the time limit of {limit:g} s and was {how}: look for an endless loop in your function", note))
    if outcome.status == "died":
        return ExerciseResult(exercise.id, "crashed", 0, pts, seconds,
                              _join(f"the kernel died while checking your answer: {outcome.detail}", note))
    if outcome.status == "error":
        return ExerciseResult(exercise.id, "error", 0, pts, seconds,
                              f"the grader's check could not run ({outcome.ename}: {outcome.evalue}); did the notebook replace tutorlib or __import__?")
    if not isinstance(data, dict) or data.get("id") != exercise.id or data.get("status") not in ("pass", "fail", "not_attempted", "error"):
        return ExerciseResult(exercise.id, "error", 0, pts, seconds,
                              "the check did not report a result to the grader (was the grading hook tampered with?)")
    status = str(data["status"])
    message = str(data.get("message", ""))[:1000]
    return ExerciseResult(exercise.id, status, pts if status == "pass" else 0, pts, seconds, message)


def grade_notebook(
    path: str | os.PathLike[str],
    *,
    timeout: float | None = None,
    timeouts: dict[str, float] | None = None,
    cell_timeout: float = 120.0,
    memory_limit: int | None = None,
    env: dict[str, str] | None = None,
    seed: int | None = None,
    cpu_limit: float | None = None,
    abort: threading.Event | None = None,
) -> NotebookReport:
    """Grade one notebook in a fresh kernel and return its report; raises :class:`NotebookError` if it cannot be graded.

    ``seed`` fixes the run's seed (default: a fresh one from :mod:`secrets`, recorded in the report) from which
    each protocol exercise's inputs are made in this process.

    ``timeout`` overrides every exercise's time limit (seconds, answer cell and check together),
    ``timeouts`` overrides it for single exercises by id; ``cell_timeout`` limits each other cell; ``memory_limit`` (bytes, default
    :func:`default_memory_limit`) stops a kernel that grows beyond it. ``cpu_limit`` (seconds) is the CPU time
the notebook's code may use in its kernel, over all its cells and restarts (kernel start-up not counted): a kernel
over it is stopped and the exercises not yet graded are reported ``crashed`` with a message naming the limit.
``env`` adds variables to the kernel's environment. Setting ``abort`` (from another thread) stops the grading
with :class:`GradingAborted`. The file is only read.

    >>> grade_notebook("not_there.ipynb")
    Traceback (most recent call last):
    ...
    tutorlib.grading.grader.NotebookError: not_there.ipynb: no such file
    """
    started = time.monotonic()
    src = Path(path)
    nb = load_notebook(src)
    digest = sha256_file(src)
    cells = _cells(nb)
    lesson = _lesson_of(nb, cells, src)
    in_notebook = [c.exercise for c in cells if c.exercise]
    if lesson is None and not in_notebook:
        raise NotebookError(
            f"{path}: no exercises found: no cell has tutorlib exercise metadata and the file name does not start "
            "with a lesson number (like 00_welcome.ipynb); is this an exercise notebook?"
        )
    expected: dict[str, registry.Exercise | None] = {}
    for ex in registry.exercises(lesson) if lesson else []:
        expected[ex.id] = ex
    for ex_id in in_notebook:
        if ex_id not in expected:
            try:
                expected[ex_id] = registry.get_exercise(ex_id)
            except registry.UnknownExerciseError:
                expected[ex_id] = None
    if not expected:
        raise NotebookError(f"{path}: lesson {lesson} has no registered exercises and the notebook names none")
    last_answer = {c.exercise: c.index for c in cells if c.exercise}
    run_seed = secrets.randbits(63) if seed is None else int(seed)
    report = NotebookReport(path=str(path), sha256=digest, lesson=lesson or "", seed=run_seed)
    flagged, hints = _scan(cells, expected, nb)
    results: dict[str, ExerciseResult] = {}
    for ex_id, ex in expected.items():
        if ex is None:
            results[ex_id] = ExerciseResult(ex_id, "error", 0, 0, 0.0,
                                            f"no check is registered for {ex_id} in this tutorlib version; it is not graded")

    with tempfile.TemporaryDirectory(prefix="tutorlib-grade-") as workdir, tempfile.TemporaryDirectory(prefix="tutorlib-secret-") as secret_dir:
        shutil.copy2(src, os.path.join(workdir, src.name))
        os.chmod(secret_dir, 0o700)
        kernel = _Kernel(workdir, _kernel_env(env), memory_limit or default_memory_limit(), os.path.join(secret_dir, "kernel.log"),
                         cpu_limit=cpu_limit, abort=abort)
        kernel.start()
        run = _Run(cells, workdir, secret_dir, kernel, cell_timeout)
        try:
            for cell in cells:
                if cell.is_check:
                    continue
                ex = expected.get(cell.exercise) if cell.exercise else None
                if kernel.cpu_exhausted:  # the notebook used up its CPU time: nothing more runs
                    if ex is not None and last_answer[ex.id] == cell.index:
                        results[ex.id] = ExerciseResult(ex.id, "crashed", 0, ex.points, 0.0, f"not run: {kernel.cpu_message}")
                    continue
                if ex is None:
                    outcome, _ = run.run_cell(cell, cell_timeout)
                    if cell.exercise is None and outcome.status != "ok":
                        report.cell_errors.append(_cell_error(cell, outcome))
                    continue
                limit = _limit(ex, timeout, timeouts)
                if last_answer[ex.id] != cell.index:  # an earlier copy of an answer cell: run it, grade the last
                    run.run_cell(cell, limit)
                    continue
                results[ex.id] = _grade_exercise(run, ex, cell, limit, protocol.exercise_seed(run_seed, ex.id))
            for ex_id, ex in expected.items():
                if ex is None or ex_id in results:
                    continue
                if kernel.cpu_exhausted:
                    results[ex_id] = ExerciseResult(ex_id, "crashed", 0, ex.points, 0.0,
                                                    f"not checked (its answer cell was not found): {kernel.cpu_message}")
                    continue
                limit = _limit(ex, timeout, timeouts)
                if ex.check is not None:
                    outcome, data, note = run.protocol_check(ex, limit, protocol.exercise_seed(run_seed, ex_id))
                else:
                    outcome, data, note = run.report(ex_id, limit)
                res = _from_check(ex, data, outcome, outcome.seconds, note, limit)
                if res.status == "pass":
                    res.message = "passed (its answer cell was not found, so it was checked at the end of the notebook)"
                else:
                    res.status, res.score = "missing", 0
                    res.message = _join(
                        f"no answer cell for {ex_id} in this notebook (deleted, or its cell metadata lost?); "
                        f"checked at the end of the notebook: {res.message}")
                results[ex_id] = res
            report.environment = _environment(run, secret_dir)
        finally:
            kernel.stop()
    order = list(expected)
    for ex_id, ex in expected.items():
        res = results[ex_id]
        if ex is not None and ex.check is not None:
            res.seed = protocol.exercise_seed(run_seed, ex_id)
        res.hints = hints.get(ex_id, 0)
        if ex_id in flagged:
            res.message = _join(flagged[ex_id], f"the check said: {res.status}: {res.message}" if res.message else "")
            res.status, res.score = "fail", 0
    report.exercises = [results[i] for i in order]
    report.kernel_restarts = run.restarts
    report.seconds = time.monotonic() - started
    return report


def _limit(ex: registry.Exercise, timeout: float | None, timeouts: dict[str, float] | None) -> float:
    if timeouts and ex.id in timeouts:
        return float(timeouts[ex.id])
    return float(timeout) if timeout is not None else ex.timeout


def _scan(cells: Sequence[_Cell], expected: dict[str, registry.Exercise | None], nb: Any) -> tuple[dict[str, str], dict[str, int]]:
    """The source scan (:func:`_static_findings`) and the hints shown, with the garbage collector paused."""
    with _AST_LOCK:
        enabled = gc.isenabled()
        gc.disable()
        try:
            for attempt in range(3):
                try:
                    return _static_findings(cells, expected), static.hints_shown(nb.cells)
                except SystemError:  # the CPython bug above, should the collector run anyway: parse again
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")
        finally:
            if enabled:
                gc.enable()


def _static_findings(cells: Sequence[_Cell], expected: dict[str, registry.Exercise | None]) -> dict[str, str]:
    """Per exercise id, why the notebook's source disqualifies it: it imports the grading code, or the
    exercise's answer cells use the library's own implementation (found here, in the grader's process)."""
    found: dict[str, str] = {}
    imports = [(c, line) for c in cells if not c.is_check for line in static.grading_imports(c.source)]
    if imports:
        cell, line = imports[0]
        more = f" (and {len(imports) - 1} more)" if len(imports) > 1 else ""
        why = (f"the notebook imports the grading code (cell {cell.index}: `{line}`{more}); answers may not reach "
               "into tutorlib.grading: remove it")
        found = {ex_id: why for ex_id in expected}
    aliases: dict[str, str] = {}
    for cell in cells:
        if cell.is_check:
            continue
        ex = expected.get(cell.exercise) if cell.exercise else None
        reference = tuple(getattr(getattr(ex, "check", None), "reference", ()) or ())
        if reference:
            used = static.reference_uses(cell.source, reference, aliases)
            if used and cell.exercise not in found:
                found[cell.exercise] = protocol._reference_message(used[0])  # type: ignore[index]
        aliases = static.imports_of(cell.source, aliases)
    return found


def _cell_error(cell: _Cell, outcome: _Outcome) -> CellError:
    first = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")[:120]
    if outcome.status == "error":
        error = f"{outcome.ename}: {outcome.evalue}".rstrip(": ").splitlines()[0][:300] if outcome.evalue else outcome.ename
    elif outcome.status == "timeout":
        error = "timed out (the cell did not finish within the cell time limit)"
    else:
        error = f"the kernel died: {outcome.detail}"
    return CellError(cell.index, first, error)


def _grade_exercise(run: _Run, ex: registry.Exercise, cell: _Cell, limit: float, seed: int = 0) -> ExerciseResult:
    outcome, note = run.run_cell(cell, limit)
    pts = ex.points
    if outcome.status == "timeout":
        how = "interrupted" if outcome.detail == "interrupted" else "killed (it ignored the interrupt)"
        return ExerciseResult(ex.id, "timeout", 0, pts, outcome.seconds,
                              _join(f"the answer cell did not finish within the time limit of {limit:g} s and was {how}", note))
    if outcome.status == "died":
        return ExerciseResult(ex.id, "crashed", 0, pts, outcome.seconds,
                              _join(f"the kernel died while running the answer cell: {outcome.detail}", note))
    if outcome.status == "error":
        if outcome.ename == "NotImplementedError" and "write your answer here" in outcome.evalue:
            return ExerciseResult(ex.id, "not_attempted", 0, pts, outcome.seconds,
                                  "the answer cell still raises NotImplementedError: replace the stub with your answer")
        hint = {
            "SystemExit": " (the answer cell called sys.exit()/exit(): remove it)",
            "StdinNotImplementedError": " (input() cannot be used while grading: remove it)",
        }.get(outcome.ename, "")
        return ExerciseResult(ex.id, "error", 0, pts, outcome.seconds,
                              f"the answer cell raised {outcome.ename}: {outcome.evalue}{hint}".rstrip(": "))
    # The answer and its check share the limit; time spent restarting a kernel is not counted.
    remaining = max(1.0, limit - outcome.seconds)
    if ex.check is not None:
        check_outcome, data, check_note = run.protocol_check(ex, remaining, seed)
    else:
        check_outcome, data, check_note = run.report(ex.id, remaining)
    return _from_check(ex, data, check_outcome, outcome.seconds + check_outcome.seconds, check_note, limit)


def _environment(run: _Run, secret_dir: str) -> dict[str, str]:
    path = os.path.join(secret_dir, f"env-{secrets.token_hex(8)}.json")
    code = f"__import__('tutorlib.grading._gradehook', fromlist=['environment']).environment({path!r})"
    if not run.kernel.alive():
        run.kernel.stop()
        run.kernel.start()
    outcome = run.kernel.execute(code, 120, silent=True, counted=False)
    if outcome.status == "ok" and os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            return {k: str(v) for k, v in data.items() if k in ("python", "torch", "device")}
        except (OSError, json.JSONDecodeError):
            pass
    return {"python": "unknown", "torch": "unknown", "device": "unknown"}


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given, folders replaced by the ``.ipynb`` files inside them (checkpoints skipped), sorted.

    >>> expand_paths(["a.ipynb"])
    [PosixPath('a.ipynb')]
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts))
        else:
            out.append(p)
    return out


def grade_paths(
    paths: Iterable[str | os.PathLike[str]],
    *,
    timeout: float | None = None,
    cell_timeout: float = 120.0,
    memory_limit: int | None = None,
    progress: Any = None,
    cpu_limit: float | None = None,
) -> list[NotebookReport]:
    """Grade several notebooks (folders expand to their notebooks); unreadable ones get a report with ``error`` set.

    ``progress``, if given, is called with each path before it is graded. One at a time; for a class
    (in parallel, resumable, with a gradebook) see :mod:`tutorlib.grading.classroom`.

    >>> [r.error for r in grade_paths(["missing.ipynb"])]
    ['missing.ipynb: no such file']
    """
    reports = []
    for p in expand_paths(paths):
        if progress is not None:
            progress(p)
        try:
            reports.append(grade_notebook(p, timeout=timeout, cell_timeout=cell_timeout, memory_limit=memory_limit,
                                          cpu_limit=cpu_limit))
        except NotebookError as exc:
            reports.append(NotebookReport(path=str(p), error=str(exc)))
        except RuntimeError as exc:  # the kernel could not start
            reports.append(NotebookReport(path=str(p), error=f"{p}: {exc}"))
    return reports


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: python -m tutorlib.grading grade NOTEBOOK…")
