"""Build the course as a static HTML book from the stored notebooks, offline and without executing them.

``python -m book.build`` (or ``bash run.sh book``) stages a Sphinx source folder in ``_build/book/src``
(this folder's ``conf.py``, the landing page made from README.md, the lessons of ``notebooks/`` with their
widget outputs turned into static snapshots, and the exercise and solution notebooks as downloads), then
runs Sphinx into ``_build/book/html``. Nothing is written into ``notebooks/``; staged files are rewritten
only when their content changed, so a second build only redoes the pages that changed.

>>> lesson_stems(ROOT / "notebooks")[:2]
['00_welcome', '01_optimizers']
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python book/build.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from book.landing import landing_page, readme_parts  # noqa: E402
from book.static_widgets import snapshot_widgets  # noqa: E402

__all__ = ["ROOT", "lesson_stems", "stage", "build"]

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent


def lesson_stems(folder: Path) -> list[str]:
    """The lesson notebooks of ``folder`` (``NN_name.ipynb``), by number, without the suffix."""
    return sorted(p.stem for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` unless it already holds exactly that (keeps Sphinx's incremental build)."""
    if path.exists() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _title(nb: dict, fallback: str) -> str:
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _stage_notebook(src: Path, dest: Path) -> int:
    nb = json.loads(src.read_text(encoding="utf-8"))
    widgets = snapshot_widgets(nb)
    _write(dest, (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
    return widgets


def _toctree(caption: str, entries: list[str]) -> str:
    return "\n".join(["```{toctree}", ":hidden:", f":caption: {caption}", ":maxdepth: 1", "", *entries, "```", ""])


def stage(src: Path, root: Path = ROOT, extra: list[Path] | None = None) -> dict:
    """Lay out the Sphinx source folder ``src`` from the repository ``root``; ``extra`` notebooks are added
    as pages of their own (under ``extra/``). Returns what was staged (lessons, widget outputs replaced).
    """
    src.mkdir(parents=True, exist_ok=True)
    stems = lesson_stems(root / "notebooks")
    if not stems:
        raise FileNotFoundError(f"no lesson notebooks (NN_name.ipynb) in {root / 'notebooks'}")
    wanted: set[Path] = {src / "conf.py", src / "index.md"}
    _write(src / "conf.py", (HERE / "conf.py").read_bytes())
    widgets = 0
    for stem in stems:
        widgets += _stage_notebook(root / "notebooks" / f"{stem}.ipynb", src / "notebooks" / f"{stem}.ipynb")
        # the lesson exactly as stored (widgets live), for the landing page's download link
        _write(src / "stored" / f"{stem}.ipynb", (root / "notebooks" / f"{stem}.ipynb").read_bytes())
        wanted |= {src / "notebooks" / f"{stem}.ipynb", src / "stored" / f"{stem}.ipynb"}
    downloads: dict[str, set[str]] = {}
    for folder in ("exercises", "solutions"):
        downloads[folder] = set(lesson_stems(root / folder)) & set(stems)
        for stem in downloads[folder]:
            _write(src / folder / f"{stem}.ipynb", (root / folder / f"{stem}.ipynb").read_bytes())
            wanted.add(src / folder / f"{stem}.ipynb")
    extras = []
    for path in extra or []:
        widgets += _stage_notebook(Path(path), src / "extra" / Path(path).name)
        wanted.add(src / "extra" / Path(path).name)
        extras.append(f"extra/{Path(path).stem}")

    parts = readme_parts((root / "README.md").read_text(encoding="utf-8"))
    listed = {row["stem"] for row in parts.rows}
    for stem in stems:  # a lesson the README does not list yet still gets a row (and the build says so)
        if stem not in listed:
            nb = json.loads((root / "notebooks" / f"{stem}.ipynb").read_text(encoding="utf-8"))
            cells = [stem[:2], f"[{_title(nb, stem)}](notebooks/{stem}.ipynb)"] + [""] * (len(parts.header) - 2)
            parts.rows.append({"cells": cells, "stem": stem})
            print(f"note: README.md's lesson table does not list notebooks/{stem}.ipynb; the book adds a bare row")
    parts.rows = [r for r in parts.rows if r["stem"] in stems]
    parts.rows.sort(key=lambda r: r["stem"])
    page = landing_page((HERE / "index.md").read_text(encoding="utf-8"), parts,
                        downloads["exercises"], downloads["solutions"])
    toc = _toctree("Lessons", [f"notebooks/{s}" for s in stems])
    if extras:
        toc += "\n" + _toctree("Extra pages", extras)
    page = page.replace("<!-- toctree: lessons -->", toc)
    _write(src / "index.md", page.encode("utf-8"))
    for old in src.rglob("*"):  # a lesson that was renamed or removed leaves no stale page behind
        if old.is_file() and old not in wanted:
            old.unlink()
    return {"lessons": stems, "widget_outputs": widgets, "extra": extras}


def build(out: Path, root: Path = ROOT, extra: list[Path] | None = None, quiet: bool = True) -> Path:
    """Stage and build the book under ``out`` (``out/src``, ``out/doctrees``, ``out/html``); returns the
    path of the landing page. Raises ``RuntimeError`` with Sphinx's output when the build fails."""
    out = Path(out).resolve()
    info = stage(out / "src", root=root, extra=extra)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-d", str(out / "doctrees"), str(out / "src"),
           str(out / "html")]
    if quiet:
        cmd.insert(3, "-q")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    (out / "build.log").write_text(log, encoding="utf-8")
    if proc.returncode != 0:
        raise RuntimeError(f"sphinx-build failed (exit {proc.returncode}); its output:\n{log[-4000:]}")
    index = out / "html" / "index.html"
    if not index.exists():
        raise RuntimeError(f"sphinx-build wrote no {index}; its output:\n{log[-4000:]}")
    info["index"] = index
    return index


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "_build" / "book",
                    help="build folder (default _build/book; the site goes to OUT/html)")
    ap.add_argument("--extra", type=Path, nargs="*", default=[], help="more notebooks to add as pages")
    args = ap.parse_args(argv)
    missing = [m for m in ("sphinx", "myst_nb", "sphinx_book_theme") if _missing(m)]
    if missing:
        print(f"error: the book needs {', '.join(missing)}: pip install -e '.[book]' (bash run.sh book does)",
              file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        index = build(args.out, extra=args.extra)
    except (RuntimeError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    warnings = [ln for ln in (args.out / "build.log").read_text().splitlines() if "WARNING" in ln]
    print(f"built the book in {time.perf_counter() - t0:.0f} s ({len(warnings)} Sphinx warnings, "
          f"see {args.out / 'build.log'})")
    print(f"open file://{index}")
    return 0


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


if __name__ == "__main__":
    sys.exit(main())
