"""Execute every lesson notebook (full and/or smoke mode) and record wall time and the kernel's peak memory.

Prints a Markdown table (the README's lesson table is filled from it) and, with --json, writes the
figures to a file. With --store (full mode), each executed lesson is written back to notebooks/ with
its outputs and provenance (date, machine, threads, torch, device, wall/CPU time, peak memory, a hash
of each code cell and of tutorlib's sources); `bash run.sh execute` is the same. Usage:
    python benchmarks/course.py --mode smoke            # the whole course in smoke mode (target ≤ 10 min on 2 cores)
    python benchmarks/course.py --mode full 00 01       # chosen lessons in full mode
    python benchmarks/course.py --mode full --store --stale   # re-execute and store the lessons whose code changed
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from tutorlib.grading.nbexec import execute_lesson
from tutorlib.grading.stored import (has_outputs, machine_description, provenance_of, stale_cells, stamp_cells,
                                     tutorlib_sha)

ROOT = Path(__file__).resolve().parents[1]
PEAK_CELL = ("import resource as _r, sys as _s\n"
             "_u, _c = _r.getrusage(_r.RUSAGE_SELF), _r.getrusage(_r.RUSAGE_CHILDREN)\n"
             "print('__PEAK_KIB__', _u.ru_maxrss * (1 if _s.platform != 'darwin' else 1/1024))\n"
             "print('__CPU_S__', _u.ru_utime + _u.ru_stime + _c.ru_utime + _c.ru_stime)\n"
             "import torch as _t\n"
             "from tutorlib.runtime import get_device as _gd\n"
             "_d = _gd()\n"
             "print('__DEVICE__', f'{_d} ({_t.cuda.get_device_name(_d)})' if _d.type == 'cuda' else str(_d))\n"
             "print('__THREADS__', _t.get_num_threads())")


def needs_refresh(path: Path) -> str:
    """Why the stored lesson ``path`` must be re-executed ("" when its stored outputs are current)."""
    nb = nbformat.read(path, as_version=4)
    prov = provenance_of(nb)
    if prov is None or not has_outputs(nb):
        return "never stored executed"
    if prov.get("mode") != "full":
        return f"stored from a {prov.get('mode')} run"
    stale = stale_cells(nb)
    if stale:
        return f"{len(stale)} code cell(s) changed, first {stale[0]}"
    if prov.get("tutorlib_sha") != tutorlib_sha():
        return "tutorlib's sources changed"
    return ""


def store(path: Path, nb, result: dict) -> None:
    """Write the executed notebook back to ``path`` (atomically) with its provenance."""
    nb.cells = nb.cells[:-1]  # the measuring cell
    stamp_cells(nb)
    nb.metadata.setdefault("tutorlib", {})["provenance"] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_description(), "threads": result.get("threads"), "device": result.get("device"),
        "python": platform.python_version(), "torch": _torch_version(), "mode": result["mode"],
        "wall_seconds": result["seconds"], "cpu_seconds": result["cpu_seconds"], "peak_mib": result["peak_mib"],
        "load_average": result["load"], "tutorlib_sha": tutorlib_sha(),
    }
    tmp = path.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, path)


def _torch_version() -> str:
    import torch

    return torch.__version__


def run_lesson(path: Path, smoke: bool, timeout: int, save: Path | None = None, store_it: bool = False) -> dict:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # start from a clean notebook: no outputs of an earlier run survive an error
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    error = ""
    try:
        execute_lesson(nb, smoke=smoke, timeout=timeout, cwd=tempfile.mkdtemp(prefix="course-"))
    except Exception as exc:  # noqa: BLE001 - report and go on with the next lesson
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        error = " / ".join(lines[-3:])[:300] if lines else type(exc).__name__
    seconds = time.perf_counter() - t0
    if save is not None:  # the executed notebook, to read the figures it measured
        save.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save / f"{path.stem}.{'smoke' if smoke else 'full'}.ipynb")
    peak = cpu = threads = device = None
    for o in nb.cells[-1].get("outputs", []):
        text = o.get("text", "")
        m = re.search(r"__PEAK_KIB__ ([\d.]+)", text)
        if m:
            peak = float(m.group(1)) / 1024
        m = re.search(r"__CPU_S__ ([\d.]+)", text)
        if m:
            cpu = float(m.group(1))
        m = re.search(r"__THREADS__ (\d+)", text)
        if m:
            threads = int(m.group(1))
        m = re.search(r"__DEVICE__ (.+)", text)
        if m:
            device = m.group(1).strip()
    # The 1-minute load average before and after: on a 2-core machine anything much above 2 means other
    # processes shared the CPU and the wall time is inflated accordingly.
    load = max(load_before, os.getloadavg()[0])
    result = {"lesson": path.stem, "mode": "smoke" if smoke else "full", "seconds": round(seconds, 1),
              "peak_mib": round(peak) if peak else None, "cpu_seconds": round(cpu, 1) if cpu else None,
              "load": round(load, 1), "threads": threads, "device": device, "error": error}
    if store_it and not error:
        store(path, nb, result)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("lessons", nargs="*", help="lesson numbers (default: all in notebooks/)")
    ap.add_argument("--mode", choices=["smoke", "full", "both"], default="both")
    ap.add_argument("--timeout", type=int, default=1800, help="per-cell timeout in seconds")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--save", type=Path, metavar="DIR", help="also write each executed notebook (with its outputs) here")
    ap.add_argument("--store", action="store_true",
                    help="write each lesson that ran without error back to notebooks/ with its outputs and provenance "
                         "(full mode only)")
    ap.add_argument("--stale", action="store_true",
                    help="only the lessons whose stored outputs are missing or out of date (code cells or tutorlib changed)")
    args = ap.parse_args()
    if args.store and args.mode != "full":
        ap.error("--store keeps full-mode runs only: add --mode full")
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.lessons:
        paths = [p for p in paths if p.name[:2] in {n.zfill(2) for n in args.lessons}]
    if args.stale:
        reasons = {p: needs_refresh(p) for p in paths}
        for p, why in reasons.items():
            print(f"{p.name}: {why or 'up to date'}")
        paths = [p for p, why in reasons.items() if why]
        if not paths:
            return 0
    modes = {"smoke": [True], "full": [False], "both": [True, False]}[args.mode]
    import torch

    dev = f"CUDA {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "CPU only"
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, {dev}, Python {platform.python_version()}, torch {torch.__version__}")
    print("\n| lesson | mode | wall time (s) | kernel CPU time (s) | kernel peak memory (MiB) | load avg | status |\n|---|---|---|---|---|---|---|", flush=True)
    results, totals = [], {}
    for p in paths:
        for smoke in modes:
            r = run_lesson(p, smoke, args.timeout, args.save, store_it=args.store)
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
