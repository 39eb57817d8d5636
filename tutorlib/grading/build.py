"""Build ``exercises/`` from ``solutions/``: strip the answers, keep the prompts, write a manifest.

``solutions/NN_topic.ipynb`` is the only source of an exercise. Its answer cells carry
``{"tutorlib": {"exercise": "exNN_k", "points": P}}`` (optionally ``"timeout": S``) and hide the
answer between ``# BEGIN SOLUTION`` / ``# END SOLUTION`` (or on a line ending in ``# SOLUTION``);
its check cells carry ``{"tutorlib": {"check": "exNN_k"}}`` and call ``check("exNN_k")``. The builder
validates all of it (ids unique and registered, points and time limits agreeing with the registered
checks, markers well formed), writes ``exercises/NN_topic.ipynb`` with outputs stripped and answers
replaced by ``NotImplementedError`` stubs, and ``exercises/manifest.json``. Output is deterministic,
so a rebuild is byte-identical and :func:`stale_files` can tell when ``exercises/`` is out of date.

>>> build_exercises("solutions", "exercises")                  # doctest: +SKIP
[PosixPath('exercises/00_welcome.ipynb'), PosixPath('exercises/manifest.json')]
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import nbformat

from tutorlib.atomic import atomic_write_bytes

from . import registry
from .markers import MarkerError, find_regions, has_markers, strip_solutions

__all__ = ["BuildError", "render_exercises", "build_exercises", "stale_files", "MANIFEST"]

MANIFEST = "manifest.json"
_NAME = re.compile(r"^(?P<lesson>\d{2})_[A-Za-z0-9_\-]+\.ipynb$")
_VOLATILE_CELL_META = ("execution", "collapsed", "scrolled", "ExecuteTime", "jupyter")


class BuildError(ValueError):
    """A solution notebook is malformed; the message names the notebook, the cell and what to fix."""


def _deterministic_id(name: str, index: int) -> str:
    return hashlib.sha1(f"{name}:{index}".encode()).hexdigest()[:12]


def _render_one(path: Path, root_name: str, seen: dict[str, str], validate: bool) -> tuple[str, dict[str, Any]]:
    m = _NAME.match(path.name)
    if not m:
        raise BuildError(f"{root_name}: solution notebooks must be named NN_topic.ipynb (e.g. 00_welcome.ipynb)")
    lesson = m.group("lesson")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises several types
        raise BuildError(f"{root_name}: cannot read the notebook: {exc}") from exc
    out = copy.deepcopy(nb)
    exercises: list[dict[str, Any]] = []
    answer_cell: dict[str, int] = {}
    checks: dict[str, list[int]] = {}
    for i, cell in enumerate(out.cells):
        if out.nbformat_minor >= 5 and not cell.get("id"):
            cell["id"] = _deterministic_id(path.name, i)
        for key in _VOLATILE_CELL_META:
            cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        cell.execution_count = None
        meta = cell.metadata.get("tutorlib", {})
        meta = meta if isinstance(meta, dict) else {}
        where = f"{root_name}, cell {i}"
        ex_id = meta.get("exercise")
        if "check" in meta:
            checks.setdefault(str(meta["check"]), []).append(i)
            if f'check("{meta["check"]}")' not in cell.source and f"check('{meta['check']}')" not in cell.source:
                raise BuildError(f'{where}: a check cell for {meta["check"]} must call check("{meta["check"]}")')
        if ex_id is None:
            if has_markers(cell.source):
                raise BuildError(
                    f'{where}: has solution markers but no exercise metadata: add {{"tutorlib": {{"exercise": '
                    f'"ex{lesson}_N", "points": 1}}}} to the cell metadata, or remove the markers'
                )
            continue
        if not re.fullmatch(rf"ex{lesson}_\d+", str(ex_id)):
            raise BuildError(f"{where}: exercise id {ex_id!r} must look like 'ex{lesson}_N' in lesson {lesson}")
        if ex_id in seen:
            raise BuildError(f"{where}: exercise id {ex_id} repeats: it is already used in {seen[ex_id]}; give each exercise its own id")
        seen[ex_id] = where
        points = meta.get("points")
        if isinstance(points, bool) or not isinstance(points, (int, float)) or points <= 0:
            raise BuildError(f'{where}: exercise {ex_id} needs positive "points" in its tutorlib metadata, got {points!r}')
        try:
            if not find_regions(cell.source, root_name, i):
                raise BuildError(
                    f"{where}: exercise {ex_id} has no solution region: wrap the answer in '# BEGIN SOLUTION' / "
                    "'# END SOLUTION' or end a one-line answer with '# SOLUTION'"
                )
            cell.source = strip_solutions(cell.source, ex_id, root_name, i)
        except MarkerError as exc:
            raise BuildError(str(exc)) from None
        timeout = meta.get("timeout")
        if validate:
            try:
                registered = registry.get_exercise(ex_id)
            except registry.UnknownExerciseError as exc:
                raise BuildError(f"{where}: no check is registered for {ex_id} ({exc}); add it to tutorlib/grading/checks/ex{lesson}.py") from None
            if registered.points != points:
                raise BuildError(f"{where}: {ex_id} has {points} points in the notebook but {registered.points} in its registered check; make them agree")
            if timeout is not None and float(timeout) != registered.timeout:
                raise BuildError(f"{where}: {ex_id} has timeout {timeout} s in the notebook but {registered.timeout:g} s in its registered check; make them agree")
            timeout = registered.timeout if timeout is None else timeout
        answer_cell[ex_id] = i
        exercises.append({"id": ex_id, "points": points, "timeout": float(timeout if timeout is not None else 60.0)})
    for ex_id, idx in answer_cell.items():
        after = [c for c in checks.get(ex_id, []) if c > idx]
        if not after:
            raise BuildError(
                f'{root_name}, cell {idx}: exercise {ex_id} has no check cell after it: add a code cell `check("{ex_id}")` '
                f'with metadata {{"tutorlib": {{"check": "{ex_id}"}}}}'
            )
    for ex_id, idxs in checks.items():
        if ex_id not in answer_cell:
            raise BuildError(f"{root_name}, cell {idxs[0]}: check cell for {ex_id}, but no answer cell has that exercise id")
    if not exercises:
        raise BuildError(f"{root_name}: no exercises (no code cell has tutorlib exercise metadata)")
    out.metadata.pop("widgets", None)
    out.metadata["tutorlib"] = {"lesson": lesson, "generated_from": f"solutions/{path.name}"}
    text = nbformat.writes(out)
    entry = {
        "lesson": lesson,
        "source": f"solutions/{path.name}",
        "total_points": sum(e["points"] for e in exercises),
        "exercises": exercises,
    }
    return (text if text.endswith("\n") else text + "\n"), entry


def render_exercises(solutions_dir: str | os.PathLike[str], *, validate: bool = True) -> dict[str, bytes]:
    """The exercise files (notebooks and ``manifest.json``) that ``solutions_dir`` produces, by file name.

    Pure: nothing is written. ``validate=False`` skips the cross-check with registered checks.

    >>> sorted(render_exercises("solutions"))                       # doctest: +SKIP
    ['00_welcome.ipynb', 'manifest.json']
    """
    src = Path(solutions_dir)
    if not src.is_dir():
        raise BuildError(f"{solutions_dir}: no such folder of solution notebooks")
    files: dict[str, bytes] = {}
    manifest: dict[str, Any] = {}
    seen: dict[str, str] = {}
    notebooks = sorted(p for p in src.glob("*.ipynb"))
    if not notebooks:
        raise BuildError(f"{solutions_dir}: contains no .ipynb solution notebooks")
    for path in notebooks:
        text, entry = _render_one(path, f"{src.name}/{path.name}", seen, validate)
        files[path.name] = text.encode("utf-8")
        manifest[path.name] = entry
    doc = {"generated_by": "tutorlib build-exercises (do not edit by hand)", "notebooks": manifest}
    files[MANIFEST] = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8")
    return files


def _generated(path: Path) -> bool:
    try:
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("tutorlib", {})
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(meta, dict) and "generated_from" in meta


def build_exercises(solutions_dir: str | os.PathLike[str], exercises_dir: str | os.PathLike[str]) -> list[Path]:
    """Write every exercise notebook and the manifest into ``exercises_dir``; return the paths written.

    Generated notebooks whose solution no longer exists are removed. Raises :class:`BuildError`
    (naming notebook and cell) before writing anything if a solution notebook is malformed.

    >>> import tempfile; paths = build_exercises("solutions", tempfile.mkdtemp())   # doctest: +SKIP
    """
    files = render_exercises(solutions_dir)
    dest = Path(exercises_dir)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in files.items():
        target = dest / name
        if not target.exists() or target.read_bytes() != data:
            atomic_write_bytes(target, data)
        written.append(target)
    for old in dest.glob("*.ipynb"):
        if old.name not in files and _generated(old):
            old.unlink()
    return sorted(written)


def _cell_diff(name: str, want: bytes, have: bytes) -> str:
    try:
        a, b = json.loads(have), json.loads(want)
    except ValueError:
        return f"{name}: differs (not valid JSON in exercises/)"
    ca, cb = a.get("cells", []), b.get("cells", [])
    if len(ca) != len(cb):
        return f"{name}: has {len(ca)} cells, the build gives {len(cb)}"
    for i, (x, y) in enumerate(zip(ca, cb)):
        if x != y:
            sx = "".join(x.get("source", "")) if isinstance(x.get("source"), list) else x.get("source", "")
            sy = "".join(y.get("source", "")) if isinstance(y.get("source"), list) else y.get("source", "")
            diff = list(difflib.unified_diff(sx.splitlines(), sy.splitlines(), "exercises", "build", lineterm="", n=0))
            first = next((d for d in diff[2:] if d[:1] in "+-"), "(metadata or outputs differ)")
            return f"{name}: cell {i} differs, first change: {first[:120]}"
    return f"{name}: notebook metadata or formatting differs"


def stale_files(solutions_dir: str | os.PathLike[str], exercises_dir: str | os.PathLike[str]) -> list[str]:
    """One line per exercise file that differs from what the build would write (empty: up to date).

    >>> stale_files("solutions", "exercises")                      # doctest: +SKIP
    []
    """
    files = render_exercises(solutions_dir)
    dest = Path(exercises_dir)
    problems = []
    for name, data in files.items():
        target = dest / name
        if not target.exists():
            problems.append(f"{name}: missing from {exercises_dir}")
        elif target.read_bytes() != data:
            problems.append(_cell_diff(name, data, target.read_bytes()) if name.endswith(".ipynb") else f"{name}: differs")
    if dest.is_dir():
        for extra in sorted(dest.glob("*.ipynb")):
            if extra.name not in files:
                problems.append(f"{extra.name}: in {exercises_dir} but no solutions/{extra.name} produces it")
    return problems
