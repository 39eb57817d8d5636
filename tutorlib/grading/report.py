"""Print the grader's table and write its JSON report.

The table has one row per exercise (id, status, score, seconds, message), a total per notebook,
and the cells outside the exercises that did not run cleanly; the JSON report adds the notebook's
SHA-256, the Python/torch versions and device of the grading kernel, the run's seed, and per exercise
the seed of its inputs and the hints the notebook says were shown. Both say that grading is not a sandbox: the graded notebook's code runs with the
grader's permissions, so untrusted submissions belong in a container or VM.

>>> from tutorlib.grading.grader import NotebookReport, ExerciseResult
>>> r = NotebookReport("a.ipynb", "ab" * 32, "00", [ExerciseResult("ex00_1", "pass", 1, 1, 0.2, "passed")])
>>> print(format_table([r]).splitlines()[2])
  ex00_1     pass             1/1   0.2s  passed
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import tempfile
import textwrap
from collections.abc import Sequence
from typing import Any

from .grader import NotebookReport

__all__ = ["format_table", "to_json", "write_json", "FOOTER", "REPORT_VERSION"]

REPORT_VERSION = 2
FOOTER = (
    "Only checks that passed in this run score; protocol checks are decided in the grader's own process. "
    "Not a sandbox: graded notebooks run with your permissions; grade untrusted submissions inside a container or VM."
)
_MESSAGE_WIDTH = 90


def _pts(x: float) -> str:
    return f"{x:g}"


def format_table(reports: Sequence[NotebookReport], message_width: int | None = None) -> str:
    """The human-readable table for some notebook reports, ending with the not-a-sandbox footer.

    Messages are shortened to ``message_width`` characters (default: the terminal's width, at
    least 90); the JSON report always has them in full.

    >>> format_table([]).splitlines()[-1].startswith("Only checks that passed in this run score")
    True
    """
    if message_width is None:
        message_width = max(_MESSAGE_WIDTH, shutil.get_terminal_size((0, 0)).columns - 46)
    lines: list[str] = []
    for rep in reports:
        if rep.error:
            lines.append(f"{rep.path}: CANNOT GRADE: {rep.error}")
            lines.append("")
            continue
        env = rep.environment
        head = f"{rep.path}  (sha256 {rep.sha256[:12]}…"
        if env:
            head += f", python {env.get('python', '?')}, torch {env.get('torch', '?')}, device {env.get('device', '?')}"
        if rep.kernel_restarts:
            head += f", {rep.kernel_restarts} kernel restart{'s' if rep.kernel_restarts != 1 else ''}"
        lines.append(head + ")")
        lines.append(f"  {'exercise':<10} {'status':<14} {'score':>5} {'time':>6}  message")
        for ex in rep.exercises:
            score = f"{_pts(ex.score)}/{_pts(ex.max_score)}"
            msg = textwrap.shorten(ex.message, message_width, placeholder=" …") if ex.message else ""
            lines.append(f"  {ex.id:<10} {ex.status:<14} {score:>5} {ex.seconds:>5.1f}s  {msg}")
        total = f"{_pts(rep.total)}/{_pts(rep.max_total)}"
        lines.append(f"  {'total':<10} {'':<14} {total:>5} {rep.seconds:>5.1f}s")
        if rep.cell_errors:
            lines.append(f"  {len(rep.cell_errors)} cell{'s' if len(rep.cell_errors) != 1 else ''} outside the exercises did not run cleanly:")
            for err in rep.cell_errors:
                text = textwrap.shorten(f"{err.error}  ({err.source})", message_width + 20, placeholder=" …")
                lines.append(f"  cell {err.index:<5} {text}")
        lines.append("")
    lines.append(FOOTER)
    return "\n".join(lines)


def to_json(reports: Sequence[NotebookReport]) -> dict[str, Any]:
    """The JSON report: per notebook its hash, versions, device, seed, total, cells that raised, and each exercise by id.

    >>> to_json([])["notebooks"]
    []
    """
    try:
        from importlib.metadata import version

        tutorlib_version = version("tutorlib")
    except Exception:  # noqa: BLE001 - not installed (a source checkout)
        tutorlib_version = "source"
    notebooks = []
    for rep in reports:
        notebooks.append(
            {
                "path": rep.path,
                "sha256": rep.sha256,
                "lesson": rep.lesson,
                "graded": rep.error is None,
                "error": rep.error,
                "python": rep.environment.get("python"),
                "torch": rep.environment.get("torch"),
                "device": rep.environment.get("device"),
                "seconds": round(rep.seconds, 3),
                "kernel_restarts": rep.kernel_restarts,
                "seed": rep.seed,
                "cell_errors": [e.to_dict() for e in rep.cell_errors],
                "total": rep.total,
                "max_total": rep.max_total,
                "exercises": {ex.id: ex.to_dict() for ex in rep.exercises},
            }
        )
    return {
        "report_version": REPORT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "grader": {"tutorlib": tutorlib_version, "python": platform.python_version()},
        "total": sum(r.total for r in reports),
        "max_total": sum(r.max_total for r in reports),
        "notebooks": notebooks,
        "note": FOOTER,
    }


def write_json(reports: Sequence[NotebookReport], path: str | os.PathLike[str]) -> None:
    """Write :func:`to_json` to ``path`` (``"-"`` prints it), atomically.

    >>> import tempfile, os; p = os.path.join(tempfile.mkdtemp(), "r.json"); write_json([], p); os.path.exists(p)
    True
    """
    text = json.dumps(to_json(reports), indent=2, ensure_ascii=False) + "\n"
    if str(path) == "-":
        print(text, end="")
        return
    # A fresh, exclusively created temporary file: a link planted at a predictable name is never followed.
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tutorlib-report-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
