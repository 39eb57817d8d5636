"""Benchmark the grader: overhead per notebook beyond executing it, and seconds per ``check()``.

The course's targets: grader overhead ≤ 5 s per notebook and ≤ 2 s per check on 2 CPU cores.

* Overhead: the same notebook is run (a) by ``nbclient`` in a fresh kernel, check cells included,
  which is what "executing it" costs a learner, and (b) by ``tutorlib grade``; overhead = (b) − (a),
  median over ``--repeats`` runs.
* Per check: each registered check of the solution notebook, in this process: the first call
  (cold: includes one-off imports, such as the ``torch._dynamo`` import the first optimizer
  construction triggers) and the median of the following calls.

Run: ``python benchmarks/grading.py [--repeats 3] [NOTEBOOK …]`` (default: every notebook in solutions/).
It prints a table; the load average is printed too, because other work on the machine inflates
every number here.

Class mode, ``python benchmarks/grading.py --class 40 [--jobs 1,2]``: a class of 40 copies of lesson 00's
exercise notebook (half solved, a quarter untouched, a quarter with one wrong answer), one folder per
student, graded with ``tutorlib grade -j 1`` and then ``-j 2`` (each from scratch, no kept results): wall
time, notebooks per minute and the speed-up, and whether both runs gave the same scores.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["TUTORLIB_SMOKE"] = "1"  # the grader sets this for its kernels; nbclient inherits it from here
os.environ.setdefault("MPLBACKEND", "Agg")

import nbformat  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

from tutorlib.grading.grader import grade_notebook  # noqa: E402
from tutorlib.grading.registry import exercises, run_check  # noqa: E402

NOTEBOOK_TARGET_S = 5.0
CHECK_TARGET_S = 2.0


def execute_plain(path: Path) -> float:
    """Seconds to execute ``path`` top to bottom with nbclient in a fresh kernel (kernel start included)."""
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        # Same kernel transport as the grader (Unix sockets), so only the grading itself differs.
        km = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(tmp, "k"))
        client = NotebookClient(nb, km=km, timeout=600, resources={"metadata": {"path": tmp}})
        start = time.perf_counter()
        try:
            client.execute()
            return time.perf_counter() - start
        finally:
            km.shutdown_kernel(now=True)


def grade_time(path: Path) -> tuple[float, str]:
    start = time.perf_counter()
    report = grade_notebook(path)
    seconds = time.perf_counter() - start
    return seconds, f"{report.total:g}/{report.max_total:g}"


def solution_namespace(path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    ns: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        for cell in nb.cells:
            if cell.cell_type == "code" and "check" not in cell.metadata.get("tutorlib", {}):
                exec(compile(cell.source, str(path), "exec"), ns)
    return ns


def bench_checks(paths: list[Path], repeats: int) -> list[tuple[str, float, float, str]]:
    rows = []
    for path in paths:
        ns = solution_namespace(path)
        lesson = path.name[:2]
        for ex in exercises(lesson):
            t0 = time.perf_counter()
            status = run_check(ex.id, ns).status
            first = time.perf_counter() - t0
            warm = []
            for seed in range(max(repeats, 5)):
                t0 = time.perf_counter()
                run_check(ex.id, ns, seed=seed)
                warm.append(time.perf_counter() - t0)
            rows.append((ex.id, first, statistics.median(warm), status))
    return rows


def ok(value: float, target: float) -> str:
    return "yes" if value <= target else "NO"


def make_class(folder: Path, n: int) -> None:
    """``n`` students' copies of lesson 00: half solved, a quarter untouched, a quarter with ex00_3 wrong."""
    solution = nbformat.read(REPO / "solutions" / "00_welcome.ipynb", as_version=4)
    stub = nbformat.read(REPO / "exercises" / "00_welcome.ipynb", as_version=4)
    for i in range(n):
        nb = stub if i % 4 == 2 else nbformat.from_dict(solution)
        if i % 4 == 3:
            nb = nbformat.from_dict(solution)
            for cell in nb.cells:
                if cell.metadata.get("tutorlib", {}).get("exercise") == "ex00_3":
                    cell.source = "def count_trainable(model):\n    return sum(p.numel() for p in model.parameters())"
        (folder / f"student{i:02d}").mkdir(parents=True)
        nbformat.write(nb, folder / f"student{i:02d}" / "00_welcome.ipynb")


def bench_class(n: int, jobs: list[int]) -> int:
    from tutorlib.grading.classroom import find_submissions, grade_class

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"machine: {os.cpu_count()} CPU cores, load average {load[0]:.1f} before | {n} notebooks of lesson 00")
    with tempfile.TemporaryDirectory() as tmp:
        make_class(Path(tmp), n)
        subs = find_submissions([tmp])
        rows, scores = [], []
        for j in jobs:
            start = time.perf_counter()
            reports = grade_class(subs, jobs=j)
            wall = time.perf_counter() - start
            scores.append([(e.id, e.status, e.score) for r in reports for e in r.exercises])
            errors = sum(r.error is not None for r in reports)
            load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
            rows.append((j, wall, 60 * n / wall, sum(r.total for r in reports), errors, load[0]))
    print(f"{'-j':>3} {'wall (s)':>9} {'notebooks/min':>14} {'speed-up':>9} {'points':>7} {'errors':>7} {'load after':>11}")
    for j, wall, rate, points, errors, after in rows:
        print(f"{j:>3} {wall:>9.1f} {rate:>14.1f} {rows[0][1] / wall:>8.2f}x {points:>7g} {errors:>7} {after:>11.1f}")
    print("same scores in every run:", "yes" if all(s == scores[0] for s in scores) else "NO")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="solution notebooks (default: solutions/*.ipynb)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per notebook (median is reported)")
    parser.add_argument("--class", dest="class_size", type=int, default=0, metavar="N",
                        help="instead: grade a class of N lesson-00 notebooks with each --jobs value")
    parser.add_argument("--jobs", default="1,2", help="class mode: comma-separated -j values (default: 1,2)")
    args = parser.parse_args(argv)
    if args.class_size:
        return bench_class(args.class_size, [int(j) for j in args.jobs.split(",")])
    paths = args.notebooks or sorted((REPO / "solutions").glob("*.ipynb"))

    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"machine: {os.cpu_count()} CPU cores, load average {load[0]:.1f} | python {platform.python_version()} | torch {torch.__version__}")
    print()

    check_rows = bench_checks(paths, args.repeats)

    print("seconds per notebook, median (min) of", args.repeats, "runs, alternating; overhead = grade - execute, from the minima")
    print(f"{'notebook':<28} {'execute (s)':>14} {'grade (s)':>14} {'overhead (s)':>13} {'score':>6}  ≤ {NOTEBOOK_TARGET_S:g} s?")
    for path in paths:
        plain, graded, score = [], [], ""
        for _ in range(args.repeats):
            plain.append(execute_plain(path))
            seconds, score = grade_time(path)
            graded.append(seconds)
        over = min(graded) - min(plain)
        name = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
        cell_p = f"{statistics.median(plain):.2f} ({min(plain):.2f})"
        cell_g = f"{statistics.median(graded):.2f} ({min(graded):.2f})"
        print(f"{name:<28} {cell_p:>14} {cell_g:>14} {over:>13.2f} {score:>6}  {ok(over, NOTEBOOK_TARGET_S)}")
    print()
    print(f"{'check':<10} {'first call (s)':>15} {'median after (s)':>17} {'status':>7}  ≤ {CHECK_TARGET_S:g} s?")
    for ex_id, first, warm, status in check_rows:
        print(f"{ex_id:<10} {first:>15.3f} {warm:>17.4f} {status:>7}  {ok(max(first, warm), CHECK_TARGET_S)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
