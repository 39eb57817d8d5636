"""Execute a notebook in a fresh kernel, in smoke mode and offline, on a temporary copy (tests only)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nbformat

from tutorlib.grading.nbexec import execute_lesson

ROOT = Path(__file__).resolve().parents[1]


def run_notebook(path: str | Path, timeout: int = 300, smoke: bool = True, extra_env: dict | None = None):
    """Run every cell of ``path`` (in a temp dir, so the repo is never written) and return the executed notebook.

    The kernel gets TUTORLIB_SMOKE=1, the hub-offline variables and the repo on PYTHONPATH
    (:func:`tutorlib.grading.nbexec.lesson_environment`). A cell error raises nbclient's
    CellExecutionError naming the cell.
    """
    nb = nbformat.read(Path(path), as_version=4)
    work = Path(tempfile.mkdtemp(prefix="nbrun-"))
    try:
        execute_lesson(nb, smoke=smoke, timeout=timeout, cwd=work, extra_env=extra_env)
        return nb
    finally:
        shutil.rmtree(work, ignore_errors=True)


def outputs_of(nb, kind: str | None = None) -> list[dict]:
    """All outputs of all code cells (optionally only those of ``output_type == kind``)."""
    outs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    return [o for o in outs if kind is None or o.get("output_type") == kind]
