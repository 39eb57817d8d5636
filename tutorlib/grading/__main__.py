"""``python -m tutorlib.grading build-exercises|grade …``: the grading subcommands on their own.

>>> main(["build-exercises", "--solutions", "nowhere"])
build-exercises: nowhere: no such folder of solution notebooks
2
"""

from __future__ import annotations

import argparse
import sys

from .cli import add_build_parser, add_grade_parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; returns its exit code."""
    parser = argparse.ArgumentParser(prog="python -m tutorlib.grading", description="Build and grade exercise notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_build_parser(sub)
    add_grade_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
