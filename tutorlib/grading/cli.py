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
from typing import Any

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


def run_grade(args: argparse.Namespace) -> int:
    """``tutorlib grade``: grade notebooks, print the table, write the JSON report; exit 2 if one cannot be graded.

    >>> run_grade(argparse.Namespace(paths=["nope.ipynb"], timeout=None, cell_timeout=120, memory_limit=None, json=None))
    nope.ipynb: CANNOT GRADE: nope.ipynb: no such file
    <BLANKLINE>
    Only checks that passed in this run score; protocol checks are decided in the grader's own process. Not a sandbox: graded notebooks run with your permissions; grade untrusted submissions inside a container or VM.
    2
    """
    from .grader import grade_paths
    from .report import format_table, write_json

    def progress(path: Any) -> None:
        print(f"grading {path} …", file=sys.stderr, flush=True)

    limit = None if args.memory_limit is None else int(args.memory_limit * 2**30)
    reports = grade_paths(args.paths, timeout=args.timeout, cell_timeout=args.cell_timeout, memory_limit=limit, progress=progress)
    if not reports:
        print("grade: no notebooks found in " + ", ".join(map(str, args.paths)))
        return EXIT_CANNOT_GRADE
    print(format_table(reports))
    if args.json:
        write_json(reports, args.json)
        if args.json != "-":
            print(f"JSON report: {args.json}")
    return EXIT_CANNOT_GRADE if any(r.error for r in reports) else EXIT_OK


def add_grade_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``grade PATH… [--timeout S] [--json FILE]`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "grade",
        help="grade exercise notebooks in fresh kernels; print a table and a JSON report",
        description=(
            "Run each notebook on a copy in a fresh kernel (TUTORLIB_SMOKE=1), check each exercise right after "
            "its answer with a time limit, and report per exercise pass|fail|error|timeout|crashed|missing|"
            "not_attempted. Exit 0 when graded, 2 when a notebook cannot be graded. Not a sandbox: grade "
            "untrusted notebooks in a container."
        ),
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="notebooks, or folders of notebooks")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="time limit per exercise in seconds, answer and check together (default: each exercise's own, 60 s)")
    p.add_argument("--cell-timeout", type=float, default=120.0, metavar="S",
                   help="time limit for each non-exercise cell; notebooks run in smoke mode (default: 120)")
    p.add_argument("--memory-limit", type=float, default=None, metavar="GB",
                   help="stop a kernel using more memory than this (default: 75%% of this machine's RAM)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the JSON report here ('-' prints it)")
    p.set_defaults(func=run_grade)
    return p
