"""Lessons stored executed: their provenance, and which code cells changed after their outputs were stored.

A lesson notebook in ``notebooks/`` is stored with the outputs of one full-mode run (``bash run.sh
execute NN`` runs it and writes it back), so a reader sees every figure and number without running
anything. The run records, in the notebook's metadata under ``tutorlib.provenance``, when and where it
ran (date, CPU, threads, torch, device, mode, wall and CPU time, peak memory) and a hash of
``tutorlib``'s sources; every code cell records the hash of the source that produced its outputs
(``tutorlib.source_sha``). :func:`stale_cells` compares those hashes with the sources as they are now,
so a test can fail when a cell was edited after its outputs were stored.

>>> import nbformat
>>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
>>> stamp_cells(nb); stale_cells(nb)
[]
>>> nb.cells[0].source = "print(2)"
>>> [c.index for c in stale_cells(nb)]
[0]
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["source_sha", "tutorlib_sha", "stamp_cells", "StaleCell", "stale_cells", "provenance_of",
           "machine_description", "has_outputs", "compact_widget_state", "compact_images"]

_PACKAGE = Path(__file__).resolve().parents[1]


def source_sha(source: str) -> str:
    """A short hash of a code cell's source (trailing whitespace on lines and at the end ignored).

    >>> source_sha("x = 1  \\n") == source_sha("x = 1")
    True
    """
    norm = "\n".join(line.rstrip() for line in source.rstrip().splitlines())
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:16]


def tutorlib_sha(package: str | os.PathLike[str] = _PACKAGE) -> str:
    """A short hash of every ``.py`` file of the ``tutorlib`` package (paths and contents).

    >>> len(tutorlib_sha())
    16
    """
    h = hashlib.sha256()
    root = Path(package)
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        h.update(path.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _meta(cell: Any) -> dict[str, Any]:
    return cell.setdefault("metadata", {}).setdefault("tutorlib", {})


def stamp_cells(nb: Any) -> None:
    """Record in each code cell's metadata the hash of the source its outputs come from.

    >>> import nbformat
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    >>> stamp_cells(nb); nb.cells[0].metadata["tutorlib"]["source_sha"] == source_sha("1 + 1")
    True
    """
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            _meta(cell)["source_sha"] = source_sha(cell.get("source", ""))


@dataclass(frozen=True)
class StaleCell:
    """A code cell whose stored outputs no longer match its source."""

    index: int
    first_line: str
    reason: str

    def __str__(self) -> str:
        return f"cell {self.index} (`{self.first_line}`): {self.reason}"


def has_outputs(nb: Any) -> bool:
    """True when any code cell has outputs or an execution count.

    >>> import nbformat
    >>> has_outputs(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]))
    False
    """
    return any(c.get("cell_type") == "code" and (c.get("outputs") or c.get("execution_count") is not None)
               for c in nb.cells)


def stale_cells(nb: Any) -> list[StaleCell]:
    """The code cells whose source changed (or that were added) after the notebook's outputs were stored.

    >>> import nbformat
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a = 1")])
    >>> stale_cells(nb)[0].reason
    'no stored hash: the cell was added after the outputs were stored'
    """
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        first = next((ln.strip() for ln in src.splitlines() if ln.strip()), "")[:60]
        stored = cell.get("metadata", {}).get("tutorlib", {}).get("source_sha")
        if stored is None:
            found.append(StaleCell(i, first, "no stored hash: the cell was added after the outputs were stored"))
        elif stored != source_sha(src):
            found.append(StaleCell(i, first, "its source changed after its outputs were stored"))
    return found


def provenance_of(nb: Any) -> dict[str, Any] | None:
    """The stored run's provenance (``None`` for a notebook never stored executed).

    >>> import nbformat
    >>> provenance_of(nbformat.v4.new_notebook()) is None
    True
    """
    return nb.get("metadata", {}).get("tutorlib", {}).get("provenance")


def machine_description() -> str:
    """The CPU model and core count of this machine, e.g. ``"AMD EPYC 9R14, 2 cores"``.

    >>> "cores" in machine_description()
    True
    """
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_REF = re.compile(r'IPY_MODEL_([0-9a-f]+)|"model_id": "([0-9a-f]+)"')


def compact_widget_state(nb: Any) -> int:
    """Shrink the widget state nbclient saved in ``nb``'s metadata, in place; returns the bytes saved.

    Removes the outputs of widgets that show nothing (a finished ``leave=False`` progress bar is a box with a
    hidden layout), keeps only the models a displayed widget needs (the views in the outputs and every model
    they refer to, transitively) and drops attributes whose value is ``None`` (a ``Layout`` is mostly such defaults; the
    widget manager and the book's snapshots fill them back in). A run with many progress bars otherwise
    stores hundreds of kilobytes of empty layouts.

    >>> import nbformat
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("w")])
    >>> nb.cells[0].outputs = [nbformat.v4.new_output("display_data", {_WIDGET_VIEW: {"model_id": "a1"}})]
    >>> nb.metadata["widgets"] = {_WIDGET_STATE: {"state": {
    ...     "a1": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_b2"], "width": None}},
    ...     "b2": {"model_name": "LayoutModel", "state": {"width": None, "height": "3px"}},
    ...     "c3": {"model_name": "LayoutModel", "state": {}}}, "version_major": 2, "version_minor": 0}}
    >>> compact_widget_state(nb) > 0, sorted(nb.metadata["widgets"][_WIDGET_STATE]["state"])
    (True, ['a1', 'b2'])
    >>> nb.metadata["widgets"][_WIDGET_STATE]["state"]["b2"]["state"]
    {'height': '3px'}
    """
    widgets = nb.get("metadata", {}).get("widgets", {}).get(_WIDGET_STATE)
    if not widgets or "state" not in widgets:
        return 0
    models = widgets["state"]
    before = len(json.dumps(models))

    def hidden(out: Any) -> bool:  # a finished ``leave=False`` progress bar: its box's layout is hidden
        view = out.get("data", {}).get(_WIDGET_VIEW)
        state = models.get((view or {}).get("model_id", ""), {}).get("state", {})
        layout = models.get(str(state.get("layout", "")).removeprefix("IPY_MODEL_"), {}).get("state", {})
        return view is not None and (layout.get("visibility") == "hidden" or layout.get("display") == "none")

    for c in nb.cells:
        if c.get("cell_type") == "code" and any(hidden(o) for o in c.get("outputs", [])):
            c["outputs"] = [o for o in c["outputs"] if not hidden(o)]
    todo = [m.group(1) or m.group(2) for c in nb.cells if c.get("cell_type") == "code"
            for o in c.get("outputs", []) if _WIDGET_VIEW in o.get("data", {})
            for m in _REF.finditer(json.dumps(o["data"][_WIDGET_VIEW]))]
    keep: set[str] = set()
    while todo:
        mid = todo.pop()
        if mid in keep or mid not in models:
            continue
        keep.add(mid)
        todo += [m.group(1) or m.group(2) for m in _REF.finditer(json.dumps(models[mid]))]
    for mid in list(models):
        if mid not in keep:
            del models[mid]
        else:
            state = models[mid].get("state", {})
            for key in [k for k, v in state.items() if v is None]:
                del state[key]
    return before - len(json.dumps(models))


def compact_images(nb: Any, min_bytes: int = 150_000) -> int:
    """Re-encode each PNG output of ``nb`` larger than ``min_bytes`` (base64) with a 256-colour palette, in
    place, when that makes it smaller; returns the bytes saved. Plots and image mosaics look the same to the
    eye at a fraction of the size, which keeps the stored lessons a few MB.

    >>> import base64, io, nbformat
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.effect_noise((300, 300), 60).convert("RGB").save(buf, "PNG")
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("plot")])
    >>> nb.cells[0].outputs = [nbformat.v4.new_output("display_data", {"image/png": base64.b64encode(buf.getvalue()).decode()})]
    >>> compact_images(nb, min_bytes=1000) > 0, compact_images(nb, min_bytes=1000)
    (True, 0)
    """
    import base64
    import io

    from PIL import Image

    saved = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = out.get("data", {})
            png = data.get("image/png")
            if not isinstance(png, str) or len(png) < min_bytes:
                continue
            image = Image.open(io.BytesIO(base64.b64decode(png)))
            if image.mode == "P":  # already a palette image: done before
                continue
            buf = io.BytesIO()
            mode = "RGBA" if image.mode in ("RGBA", "LA") else "RGB"
            image.convert(mode).quantize(256, method=Image.Quantize.FASTOCTREE).save(buf, "PNG", optimize=True)
            new = base64.b64encode(buf.getvalue()).decode()
            if len(new) < len(png):
                saved += len(png) - len(new)
                data["image/png"] = new
    return saved
