"""Grade a class: many notebooks in parallel, each in its own kernel, resumable after an interruption.

- Each notebook is graded by :func:`~tutorlib.grading.grader.grade_notebook` (its own fresh kernel, its own
  temporary working folder, its time, memory and CPU-time limits); ``jobs`` of them run at once, one
  thread driving each kernel. With ``jobs > 1`` the kernels and the grader's own torch use one thread
  each (``OMP_NUM_THREADS=1``), so ``jobs`` kernels share the cores instead of fighting over them.
- A :class:`GradingState` folder keeps one result file per graded notebook, keyed by the notebook's path
  and SHA-256 and written atomically as soon as it is graded. A rerun after Ctrl-C or a killed grader
  skips the notebooks whose result is there for the same content and the same grading options, and
  grades the rest; a notebook whose file changed is graded again.
- Student ids (:func:`student_id`): for a notebook found in a folder given on the command line, the
  name of the folder directly below it (``submissions/alice/00_welcome.ipynb`` → ``alice``); for one
  directly in that folder, or a file named on the command line, the file's stem
  (``submissions/alice.ipynb`` → ``alice``).

>>> [(s.path.name, s.student) for s in find_submissions(["a/bob.ipynb"])]
[('bob.ipynb', 'bob')]
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutorlib.atomic import atomic_write_json

from .grader import GradingAborted, NotebookError, NotebookReport, grade_notebook, sha256_file

__all__ = ["Submission", "student_id", "find_submissions", "GradingState", "grade_class"]

STATE_VERSION = 1


@dataclass(frozen=True)
class Submission:
    """One notebook to grade and the student it belongs to."""

    path: Path
    student: str


def student_id(path: str | os.PathLike[str], folder: str | os.PathLike[str] | None = None) -> str:
    """The student a notebook belongs to: the first folder below ``folder`` it sits in, else its file stem.

    >>> student_id("submissions/alice/00_welcome.ipynb", "submissions")
    'alice'
    >>> student_id("submissions/bob.ipynb", "submissions"), student_id("carol.ipynb")
    ('bob', 'carol')
    """
    p = Path(path)
    if folder is not None:
        rel = p.relative_to(Path(folder))
        if len(rel.parts) > 1:
            return rel.parts[0]
    return p.stem


def find_submissions(paths: Iterable[str | os.PathLike[str]]) -> list[Submission]:
    """The notebooks to grade, with their student ids: files as given, folders searched for ``.ipynb`` files
    (``.ipynb_checkpoints`` skipped), each folder's notebooks sorted.

    >>> find_submissions([])
    []
    """
    out: list[Submission] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.relative_to(p).parts)
            out.extend(Submission(q, student_id(q, p)) for q in found)
        else:
            out.append(Submission(p, student_id(p)))
    return out


class GradingState:
    """A folder of finished results, one JSON file per graded notebook (path + content), written atomically.

    >>> import tempfile; from tutorlib.grading.grader import NotebookReport
    >>> state = GradingState(tempfile.mkdtemp())
    >>> state.save(NotebookReport("nb.ipynb", sha256="ab" * 32), {"timeout": None})
    >>> state.load("nb.ipynb", "ab" * 32, {"timeout": None}).path, state.load("nb.ipynb", "cd" * 32, {"timeout": None})
    ('nb.ipynb', None)
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    @staticmethod
    def _path_key(path: str | os.PathLike[str]) -> str:
        return hashlib.sha256(str(Path(path).resolve()).encode("utf-8")).hexdigest()[:20]

    def file_for(self, path: str | os.PathLike[str], sha256: str) -> Path:
        """Where the result of ``path`` with content ``sha256`` is kept."""
        return self.folder / f"{self._path_key(path)}-{sha256[:20]}.json"

    def load(self, path: str | os.PathLike[str], sha256: str, options: dict[str, Any]) -> NotebookReport | None:
        """The kept report of this path and content graded with these options, or None."""
        f = self.file_for(path, sha256)
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if (not isinstance(data, dict) or data.get("state_version") != STATE_VERSION or data.get("sha256") != sha256
                or data.get("options") != options or not isinstance(data.get("report"), dict)):
            return None
        try:
            report = NotebookReport.from_dict(data["report"])
        except (KeyError, TypeError, ValueError):
            return None
        report.path = str(path)  # the path as given in this run
        return report

    def save(self, report: NotebookReport, options: dict[str, Any]) -> None:
        """Keep ``report`` (for its path and SHA-256); older results of the same path are removed."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.file_for(report.path, report.sha256)
        data = {"state_version": STATE_VERSION, "path": str(Path(report.path).resolve()), "sha256": report.sha256,
                "options": options, "report": report.to_dict()}
        atomic_write_json(target, data)
        for old in self.folder.glob(f"{self._path_key(report.path)}-*.json"):
            if old != target:
                try:
                    old.unlink()
                except OSError:
                    pass


def _grade_one(sub: Submission, options: dict[str, Any], env: dict[str, str] | None, abort: threading.Event,
               state: GradingState | None) -> NotebookReport | None:
    if abort.is_set():
        return None
    try:
        report = grade_notebook(sub.path, timeout=options["timeout"], cell_timeout=options["cell_timeout"],
                                memory_limit=options["memory_limit"], cpu_limit=options["cpu_limit"], env=env, abort=abort)
    except GradingAborted:
        return None
    except NotebookError as exc:
        return NotebookReport(path=str(sub.path), error=str(exc))
    except RuntimeError as exc:  # the kernel could not start
        return NotebookReport(path=str(sub.path), error=f"{sub.path}: {exc}")
    except Exception as exc:  # noqa: BLE001 - a grader bug on one notebook must not stop the class; not kept, so retried
        return NotebookReport(path=str(sub.path), error=f"{sub.path}: the grader failed on this notebook "
                                                        f"({type(exc).__name__}: {exc}); grade it again")
    if state is not None:
        state.save(report, options)  # at once: a grader killed later keeps this result
    return report


def grade_class(
    submissions: Sequence[Submission],
    *,
    jobs: int = 1,
    state: GradingState | None = None,
    regrade: bool = False,
    timeout: float | None = None,
    cell_timeout: float = 120.0,
    memory_limit: int | None = None,
    cpu_limit: float | None = None,
    progress: Callable[[str, Submission, NotebookReport | None], None] | None = None,
) -> list[NotebookReport]:
    """Grade ``submissions`` with ``jobs`` kernels at once; returns their reports in the same order.

    With ``state``, notebooks already graded (same path, same content, same options) are not graded again
    unless ``regrade``; each new result is kept as soon as it is ready. ``progress(event, submission, report)``
    is called with ``"start"`` before a notebook is graded, ``"done"`` after, and ``"kept"`` for a result
    taken from ``state``. On Ctrl-C the kernels are stopped, what finished is kept, and ``KeyboardInterrupt``
    propagates. The other arguments are :func:`~tutorlib.grading.grader.grade_notebook`'s.

    >>> grade_class([Submission(Path("missing.ipynb"), "missing")])[0].error
    'missing.ipynb: no such file'
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    options = {"timeout": timeout, "cell_timeout": cell_timeout, "memory_limit": memory_limit, "cpu_limit": cpu_limit}
    reports: list[NotebookReport | None] = [None] * len(submissions)
    todo: list[int] = []
    for i, sub in enumerate(submissions):
        kept = None
        if state is not None and not regrade and sub.path.is_file():
            kept = state.load(sub.path, sha256_file(sub.path), options)
        if kept is not None:
            reports[i] = kept
            if progress is not None:
                progress("kept", sub, kept)
        else:
            todo.append(i)
    if not todo:
        return [r for r in reports if r is not None]
    import torch

    from . import registry

    env, threads = None, torch.get_num_threads()
    if jobs > 1 and len(todo) > 1:
        # jobs kernels share the cores: one thread each, and one for the grader's own comparisons.
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        torch.set_num_threads(1)
    registry.exercises()  # import every check here, once, before threads look them up
    try:
        _run(submissions, todo, reports, jobs, options, env, state, progress)
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return [r for r in reports if r is not None]


def _run(submissions: Sequence[Submission], todo: list[int], reports: list[NotebookReport | None], jobs: int,
         options: dict[str, Any], env: dict[str, str] | None, state: GradingState | None,
         progress: Callable[[str, Submission, NotebookReport | None], None] | None) -> None:
    abort = threading.Event()
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="tutorlib-grade") as pool:
        running: dict[Future[NotebookReport | None], int] = {}
        queue = list(reversed(todo))
        try:
            while queue or running:
                while queue and len(running) < jobs:
                    i = queue.pop()
                    if progress is not None:
                        progress("start", submissions[i], None)
                    running[pool.submit(_grade_one, submissions[i], options, env, abort, state)] = i
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    i = running.pop(fut)
                    reports[i] = fut.result()
                    if progress is not None:
                        progress("done", submissions[i], reports[i])
        except BaseException:
            abort.set()  # the running kernels are stopped within a fraction of a second
            raise
