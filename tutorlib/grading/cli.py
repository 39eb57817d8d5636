"""The ``build-exercises`` and ``grade`` subcommands, ready to be added to the ``tutorlib`` command.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="tutorlib")
>>> sub = parser.add_subparsers(dest="command")
>>> _ = add_build_parser(sub); _ = add_grade_parser(sub)
>>> args = parser.parse_args(["grade", "a.ipynb", "--timeout", "30"])
>>> args.timeout, args.func.__name__
(30.0, 'run_grade')
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tutorlib.command import positive_float, positive_int

__all__ = ["add_build_parser", "add_grade_parser", "run_build", "run_grade"]

EXIT_OK, EXIT_STALE, EXIT_CANNOT_GRADE = 0, 1, 2


def run_build(args: argparse.Namespace) -> int:
    """``tutorlib build-exercises``: write exercises/ (or, with ``--check``, say whether it is stale).

    >>> run_build(argparse.Namespace(solutions="nowhere", exercises="x", check=False))
    build-exercises: nowhere: no such folder of solution notebooks
    2
    """
    from .build import BuildError, build_exercises, stale_files

    try:
        if args.check:
            problems = stale_files(args.solutions, args.exercises)
            if problems:
                print(f"{args.exercises}/ is out of date with {args.solutions}/:")
                for line in problems:
                    print(f"  {line}")
                print("run `tutorlib build-exercises` and commit the result (never edit exercises/ by hand)")
                return EXIT_STALE
            print(f"{args.exercises}/ is up to date with {args.solutions}/")
            return EXIT_OK
        paths = build_exercises(args.solutions, args.exercises)
    except BuildError as exc:
        print(f"build-exercises: {exc}")
        return EXIT_CANNOT_GRADE
    for p in paths:
        print(f"wrote {p}")
    return EXIT_OK


def add_build_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``build-exercises --solutions DIR --exercises DIR [--check]`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "build-exercises",
        help="write exercises/ from solutions/ (answers replaced by stubs) and exercises/manifest.json",
        description="Generate the exercise notebooks from the solution notebooks. --check only compares.",
    )
    p.add_argument("--solutions", default="solutions", metavar="DIR", help="solution notebooks (default: solutions)")
    p.add_argument("--exercises", default="exercises", metavar="DIR", help="where to write (default: exercises)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 with a summary if exercises/ is stale")
    p.set_defaults(func=run_build)
    return p


def _default_state(args: argparse.Namespace) -> str | None:
    """Where results are kept between runs: --state, else .grading-state/ beside the gradebook or the JSON report,
    else beside the feedback folder; None (nothing kept) when no file is written."""
    if getattr(args, "state", None):
        return str(args.state)
    for out in (getattr(args, "gradebook", None), getattr(args, "json", None)):
        if out and out != "-":
            return str(Path(out).resolve().parent / ".grading-state")
    if getattr(args, "feedback", None):
        return str(Path(args.feedback).resolve().parent / ".grading-state")
    return None


def run_grade(args: argparse.Namespace) -> int:
    """``tutorlib grade``: grade notebooks (``--jobs`` at once), print the table, write the JSON report, the gradebook
    and the feedback files; exit 2 if one cannot be graded.

    >>> run_grade(argparse.Namespace(paths=["nope.ipynb"], timeout=None, cell_timeout=120, memory_limit=None, json=None))
    nope.ipynb: CANNOT GRADE: nope.ipynb: no such file
    <BLANKLINE>
    Only checks that passed in this run score; protocol checks are decided in the grader's own process. Not a sandbox: graded notebooks run with your permissions; grade untrusted submissions inside a container or VM.
    2
    """
    from .classroom import GradingState, find_submissions, grade_class
    from .report import format_table, write_json

    subs = find_submissions(args.paths)
    if not subs:
        print("grade: no notebooks found in " + ", ".join(map(str, args.paths)))
        return EXIT_CANNOT_GRADE
    state_dir = _default_state(args)
    state = GradingState(state_dir) if state_dir else None
    count = {"start": 0, "done": 0, "kept": 0}
    todo = len(subs)

    def progress(event: str, sub: Any, report: Any) -> None:
        count[event] += 1
        if event == "start":
            print(f"grading {sub.path} …", file=sys.stderr, flush=True)
        elif event == "done" and report is not None and getattr(args, "jobs", 1) > 1:
            score = "cannot grade" if report.error else f"{report.total:g}/{report.max_total:g} in {report.seconds:.1f} s"
            print(f"[{count['done']}/{todo - count['kept']}] graded {sub.path}: {score}", file=sys.stderr, flush=True)

    limit = None if args.memory_limit is None else int(args.memory_limit * 2**30)
    reports = grade_class(subs, jobs=getattr(args, "jobs", 1), state=state, regrade=getattr(args, "regrade", False),
                          timeout=args.timeout, cell_timeout=args.cell_timeout, memory_limit=limit,
                          cpu_limit=getattr(args, "cpu_limit", None), progress=progress)
    if count["kept"]:
        print(f"{count['kept']} of {len(subs)} notebooks were already graded (results kept in {state_dir}); "
              "--regrade grades them again", file=sys.stderr)
    print(format_table(reports))
    if args.json:
        write_json(reports, args.json)
        if args.json != "-":
            print(f"JSON report: {args.json}")
    gradebook, feedback = getattr(args, "gradebook", None), getattr(args, "feedback", None)
    if gradebook or feedback:
        from .gradebook import by_student, write_feedback, write_gradebook

        students = by_student((sub.student, rep) for sub, rep in zip(subs, reports))
        if gradebook:
            write_gradebook(students, gradebook)
            print(f"gradebook: {gradebook} ({len(students)} students)")
        if feedback:
            fmt = getattr(args, "feedback_format", "md")
            write_feedback(students, feedback, fmt)
            print(f"feedback: {feedback}/ (one {fmt} file per student)")
    return EXIT_CANNOT_GRADE if any(r.error for r in reports) else EXIT_OK


def add_grade_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``grade PATH… [-j N] [--timeout S] [--json FILE] [--gradebook CSV] [--feedback DIR] …`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "grade",
        help="grade exercise notebooks in fresh kernels; print a table, a JSON report, a gradebook and feedback",
        description=(
            "Run each notebook on a copy in a fresh kernel (TUTORLIB_SMOKE=1), check each exercise right after "
            "its answer with a time limit, and report per exercise pass|fail|error|timeout|crashed|missing|"
            "not_attempted. Exit 0 when graded, 2 when a notebook cannot be graded. Student ids: for a notebook "
            "in a folder given here, the name of the folder directly below it (submissions/alice/00_welcome.ipynb "
            "is alice); for one directly in that folder or named here, its file stem (submissions/bob.ipynb is bob). "
            "Not a sandbox: grade untrusted notebooks in a container."
        ),
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="notebooks, or folders of notebooks (searched recursively)")
    p.add_argument("-j", "--jobs", type=positive_int, default=1, metavar="N",
                   help="grade N notebooks at once, each in its own kernel with one thread (default: 1)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="time limit per exercise in seconds, answer and check together (default: each exercise's own, 60 s)")
    p.add_argument("--cell-timeout", type=float, default=120.0, metavar="S",
                   help="time limit for each non-exercise cell; notebooks run in smoke mode (default: 120)")
    p.add_argument("--memory-limit", type=float, default=None, metavar="GB",
                   help="stop a kernel using more memory than this (default: 75%% of this machine's RAM)")
    p.add_argument("--cpu-limit", type=positive_float, default=None, metavar="S",
                   help="CPU seconds a notebook's code may use in its kernel, all cells together; over it the kernel is "
                        "stopped and the exercises not yet graded are 'crashed' (default: no limit)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the JSON report here ('-' prints it)")
    p.add_argument("--gradebook", default=None, metavar="CSV",
                   help="write a CSV gradebook: columns student, one per exercise id (its score), total, max")
    p.add_argument("--feedback", default=None, metavar="DIR", help="write one feedback file per student here (STUDENT.md)")
    p.add_argument("--feedback-format", choices=("md", "html"), default="md", help="feedback as Markdown or HTML (default: md)")
    p.add_argument("--state", default=None, metavar="DIR",
                   help="keep each graded notebook's result here and skip notebooks already graded with the same content "
                        "and options (default: .grading-state/ beside --gradebook or --json, else beside --feedback)")
    p.add_argument("--regrade", action="store_true", help="grade every notebook again, even those already in the state folder")
    p.set_defaults(func=run_grade)
    return p
