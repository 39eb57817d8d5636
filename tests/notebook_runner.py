"""Execute a notebook in a fresh kernel, in smoke mode and offline, on a temporary copy (tests only)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import nbformat

from tutorlib.grading.nbexec import NudgingClient

ROOT = Path(__file__).resolve().parents[1]


def run_notebook(path: str | Path, timeout: int = 300, smoke: bool = True, extra_env: dict | None = None):
    """Run every cell of ``path`` (copied to a temp dir, so the repo is never written) and return the executed notebook.

    The kernel gets TUTORLIB_SMOKE=1, the hub-offline variables and the repo on PYTHONPATH. A cell error
    raises nbclient's CellExecutionError naming the cell.
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    work = Path(tempfile.mkdtemp(prefix="nbrun-"))
    try:
        env_backup = dict(os.environ)
        os.environ.update({
            "TUTORLIB_SMOKE": "1" if smoke else "0",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TUTORLIB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        })
        os.environ.update(extra_env or {})
        try:
            client = NudgingClient(nb, timeout=timeout, kernel_name="python3",
                                   resources={"metadata": {"path": str(work)}})
            client.execute()
        finally:
            os.environ.clear()
            os.environ.update(env_backup)
        return nb
    finally:
        shutil.rmtree(work, ignore_errors=True)


def outputs_of(nb, kind: str | None = None) -> list[dict]:
    """All outputs of all code cells (optionally only those of ``output_type == kind``)."""
    outs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    return [o for o in outs if kind is None or o.get("output_type") == kind]
