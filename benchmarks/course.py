"""Execute every lesson notebook (full and/or smoke mode) and record wall time and the kernel's peak memory.

Prints a Markdown table (the README's lesson table is filled from it) and, with --json, writes the
figures to a file. Usage:
    python benchmarks/course.py --mode smoke            # the whole course in smoke mode (target ≤ 10 min on 2 cores)
    python benchmarks/course.py --mode full 00 01       # chosen lessons in full mode
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from tutorlib.grading.nbexec import NudgingClient

ROOT = Path(__file__).resolve().parents[1]
PEAK_CELL = ("import resource as _r, sys as _s\n"
             "_u, _c = _r.getrusage(_r.RUSAGE_SELF), _r.getrusage(_r.RUSAGE_CHILDREN)\n"
             "print('__PEAK_KIB__', _u.ru_maxrss * (1 if _s.platform != 'darwin' else 1/1024))\n"
             "print('__CPU_S__', _u.ru_utime + _u.ru_stime + _c.ru_utime + _c.ru_stime)")


def run_lesson(path: Path, smoke: bool, timeout: int, save: Path | None = None) -> dict:
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
    env_backup = dict(os.environ)
    os.environ.update({"TUTORLIB_SMOKE": "1" if smoke else "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                       "TUTORLIB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    error = ""
    try:
        NudgingClient(nb, timeout=timeout, kernel_name="python3",
                      resources={"metadata": {"path": tempfile.mkdtemp(prefix="course-")}}).execute()
    except Exception as exc:  # noqa: BLE001 - report and go on with the next lesson
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        error = " / ".join(lines[-3:])[:300] if lines else type(exc).__name__
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    seconds = time.perf_counter() - t0
    if save is not None:  # the executed notebook, to read the figures it measured
        save.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save / f"{path.stem}.{'smoke' if smoke else 'full'}.ipynb")
    peak = cpu = None
    for o in nb.cells[-1].get("outputs", []):
        m = re.search(r"__PEAK_KIB__ ([\d.]+)", o.get("text", ""))
        if m:
            peak = float(m.group(1)) / 1024
        m = re.search(r"__CPU_S__ ([\d.]+)", o.get("text", ""))
        if m:
            cpu = float(m.group(1))
    # The 1-minute load average before and after: on a 2-core machine anything much above 2 means other
    # processes shared the CPU and the wall time is inflated accordingly.
    load = max(load_before, os.getloadavg()[0])
    return {"lesson": path.stem, "mode": "smoke" if smoke else "full", "seconds": round(seconds, 1),
            "peak_mib": round(peak) if peak else None, "cpu_seconds": round(cpu, 1) if cpu else None, "load": round(load, 1), "error": error}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("lessons", nargs="*", help="lesson numbers (default: all in notebooks/)")
    ap.add_argument("--mode", choices=["smoke", "full", "both"], default="both")
    ap.add_argument("--timeout", type=int, default=1800, help="per-cell timeout in seconds")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--save", type=Path, metavar="DIR", help="also write each executed notebook (with its outputs) here")
    args = ap.parse_args()
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.lessons:
        paths = [p for p in paths if p.name[:2] in {n.zfill(2) for n in args.lessons}]
    modes = {"smoke": [True], "full": [False], "both": [True, False]}[args.mode]
    import torch

    dev = f"CUDA {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "CPU only"
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, {dev}, Python {platform.python_version()}, torch {torch.__version__}")
    print("\n| lesson | mode | wall time (s) | kernel CPU time (s) | kernel peak memory (MiB) | load avg | status |\n|---|---|---|---|---|---|---|", flush=True)
    results, totals = [], {}
    for p in paths:
        for smoke in modes:
            r = run_lesson(p, smoke, args.timeout, args.save)
            results.append(r)
            totals[r["mode"]] = totals.get(r["mode"], 0) + r["seconds"]
            print(f"| {r['lesson']} | {r['mode']} | {r['seconds']} | {r['cpu_seconds']} | {r['peak_mib']} | {r['load']} | {'ok' if not r['error'] else 'ERROR: ' + r['error']} |", flush=True)
    for mode, total in totals.items():
        print(f"\ntotal {mode}: {total:.0f} s ({total / 60:.1f} min)")
    if args.json:
        args.json.write_text(json.dumps({"machine": platform.platform(), "results": results}, indent=1))
    return 1 if any(r["error"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
