"""A class's grades for a learning platform, and one feedback file per student.

- :func:`gradebook_rows` / :func:`write_gradebook`: a plain CSV with a header, one row per student
  (sorted), columns ``student``, one per exercise id (sorted by lesson and number) holding the score,
  then ``total`` and ``max``. ``max`` is the points of every exercise column, the same on every row;
  an exercise of a notebook the student did not hand in (or that could not be graded) is left empty.
  This is the shape the CSV imports of Canvas and Moodle take: match ``student`` to the platform's
  login or id column and map the exercise or ``total`` columns to assignments.
- :func:`feedback_text` / :func:`write_feedback`: ``<student>.md`` (or ``.html``) with, per notebook,
  each exercise's result and points, the first thing wrong in each exercise that did not pass (the
  check's message), the hints the notebook's saved outputs show, and the cells outside the exercises
  that raised.

>>> from tutorlib.grading.grader import NotebookReport, ExerciseResult
>>> r = NotebookReport("alice/00_welcome.ipynb", exercises=[ExerciseResult("ex00_1", "pass", 1, 1, 0.2, "passed"),
...                                                         ExerciseResult("ex00_2", "fail", 0, 1, 0.1, "wrong shape")])
>>> gradebook_rows({"alice": [r]})
[['student', 'ex00_1', 'ex00_2', 'total', 'max'], ['alice', '1', '0', '1', '2']]
"""

from __future__ import annotations

import csv
import html
import io
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from tutorlib.atomic import atomic_write_text

from .grader import NotebookReport

__all__ = ["by_student", "gradebook_rows", "write_gradebook", "feedback_text", "write_feedback"]

_ID = re.compile(r"^ex(\d+)_(\d+)$")
_PASSED = {"pass": "passed", "fail": "failed", "error": "error", "timeout": "timed out", "crashed": "crashed",
           "missing": "missing", "not_attempted": "not attempted"}


def _num(x: float) -> str:
    return f"{x:g}"


def _order(ex_id: str) -> tuple[int, int, str]:
    m = _ID.match(ex_id)
    return (int(m.group(1)), int(m.group(2)), ex_id) if m else (10**9, 0, ex_id)


def by_student(pairs: Iterable[tuple[str, NotebookReport]]) -> dict[str, list[NotebookReport]]:
    """Group ``(student, report)`` pairs by student; two graded notebooks of one student with the same exercise
    are a ``ValueError`` (which one counts is not for the grader to guess).

    >>> by_student([("bob", NotebookReport("b.ipynb"))])["bob"][0].path
    'b.ipynb'
    """
    out: dict[str, list[NotebookReport]] = {}
    seen: dict[tuple[str, str], str] = {}
    for student, report in pairs:
        for ex in report.exercises:
            other = seen.setdefault((student, ex.id), report.path)
            if other != report.path:
                raise ValueError(f"student {student!r} has two graded notebooks with exercise {ex.id}: {other} and "
                                 f"{report.path}; keep one per student and lesson and grade again (what is graded is kept)")
        out.setdefault(student, []).append(report)
    return out


def gradebook_rows(students: dict[str, Sequence[NotebookReport]]) -> list[list[str]]:
    """The gradebook as rows of text, header first (see the module docstring for the columns)."""
    points: dict[str, float] = {}
    for reports in students.values():
        for rep in reports:
            for ex in rep.exercises:
                points[ex.id] = max(points.get(ex.id, 0.0), ex.max_score)
    ids = sorted(points, key=_order)
    rows = [["student", *ids, "total", "max"]]
    full = sum(points.values())
    for student in sorted(students):
        scores = {ex.id: ex.score for rep in students[student] for ex in rep.exercises}
        rows.append([student, *(_num(scores[i]) if i in scores else "" for i in ids), _num(sum(scores.values())), _num(full)])
    return rows


def write_gradebook(students: dict[str, Sequence[NotebookReport]], path: str | os.PathLike[str]) -> None:
    """Write :func:`gradebook_rows` as a CSV file (UTF-8, comma-separated, header first), atomically.

    >>> import tempfile, os; p = os.path.join(tempfile.mkdtemp(), "g.csv"); write_gradebook({}, p); open(p).read()
    'student,total,max\\n'
    """
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(gradebook_rows(students))
    atomic_write_text(path, buf.getvalue())


def _first_line(text: str, width: int = 2000) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def feedback_text(student: str, reports: Sequence[NotebookReport], fmt: str = "md") -> str:
    """One student's feedback as Markdown (``fmt="md"``) or a standalone HTML page (``fmt="html"``).

    Text that comes from the notebook (error messages) is escaped, so it shows as text in either format.

    >>> from tutorlib.grading.grader import ExerciseResult
    >>> r = NotebookReport("00_welcome.ipynb", exercises=[ExerciseResult("ex00_2", "fail", 0, 1, 0.1, "x has shape (3,)")])
    >>> "ex00_2: x has shape (3,)" in feedback_text("bob", [r])
    True
    """
    if fmt not in ("md", "html"):
        raise ValueError(f"feedback format must be 'md' or 'html', got {fmt!r}")
    md = fmt == "md"
    esc = (lambda s: html.escape(s, quote=False).replace("|", "\\|")) if md else html.escape
    out: list[str] = []
    total = sum(r.total for r in reports)
    full = sum(r.max_total for r in reports)
    title = f"Feedback for {student}: {_num(total)}/{_num(full)} points"
    out.append(f"# {esc(title)}\n" if md else f"<h1>{esc(title)}</h1>")
    for rep in reports:
        name = Path(rep.path).name
        head = f"{name}: {_num(rep.total)}/{_num(rep.max_total)} points"
        out.append(f"## {esc(head)}\n" if md else f"<h2>{esc(head)}</h2>")
        if rep.error:
            line = f"This notebook could not be graded: {_first_line(rep.error)}"
            out.append(f"{esc(line)}\n" if md else f"<p>{esc(line)}</p>")
            continue
        if md:
            out.append("| exercise | result | points | hints seen |\n|---|---|---|---|")
            for ex in rep.exercises:
                out.append(f"| {ex.id} | {_PASSED.get(ex.status, ex.status)} | {_num(ex.score)}/{_num(ex.max_score)} | {ex.hints} |")
            out.append("")
        else:
            out.append("<table><tr><th>exercise</th><th>result</th><th>points</th><th>hints seen</th></tr>")
            for ex in rep.exercises:
                out.append(f"<tr><td>{esc(ex.id)}</td><td>{esc(_PASSED.get(ex.status, ex.status))}</td>"
                           f"<td>{_num(ex.score)}/{_num(ex.max_score)}</td><td>{ex.hints}</td></tr>")
            out.append("</table>")
        wrong = [ex for ex in rep.exercises if ex.status != "pass"]
        if wrong:
            out.append("What to fix first, per exercise:\n" if md else "<p>What to fix first, per exercise:</p><ul>")
            for ex in wrong:
                line = f"{ex.id}: {_first_line(ex.message) or _PASSED.get(ex.status, ex.status)}"
                out.append(f"- {esc(line)}" if md else f"<li>{esc(line)}</li>")
            out.append("" if md else "</ul>")
        if rep.cell_errors:
            out.append("Cells outside the exercises that did not run cleanly:\n" if md
                       else "<p>Cells outside the exercises that did not run cleanly:</p><ul>")
            for err in rep.cell_errors:
                line = f"cell {err.index} ({_first_line(err.source, 120)}): {_first_line(err.error)}"
                out.append(f"- {esc(line)}" if md else f"<li>{esc(line)}</li>")
            out.append("" if md else "</ul>")
    if md:
        return "\n".join(out).rstrip("\n") + "\n"
    body = "\n".join(out)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title></head>\n'
            f"<body>\n{body}\n</body></html>\n")


def write_feedback(students: dict[str, Sequence[NotebookReport]], folder: str | os.PathLike[str], fmt: str = "md") -> list[Path]:
    """Write one feedback file per student into ``folder`` (``<student>.md`` or ``.html``); returns their paths.

    >>> import tempfile; [p.name for p in write_feedback({"bob": []}, tempfile.mkdtemp())]
    ['bob.md']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for student in sorted(students):
        if not student or student in (".", "..") or "/" in student or os.sep in student:
            raise ValueError(f"cannot name a feedback file after the student id {student!r}")
        path = folder / f"{student}.{fmt}"
        atomic_write_text(path, feedback_text(student, students[student], fmt))
        written.append(path)
    return written
