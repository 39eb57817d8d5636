"""Every lesson's exercises: solutions get full marks and run without a raising cell, untouched exercises get zero (all not attempted),
exercises/ is what the builder makes, and every lesson has ≥ 5 exercises with a registered check."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from tutorlib.grading.grader import grade_notebook

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def _ids(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [c.metadata["tutorlib"]["exercise"] for c in nb.cells
            if c.cell_type == "code" and "exercise" in c.get("metadata", {}).get("tutorlib", {})]


def test_every_lesson_has_solutions_and_exercises():
    lessons = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert lessons, "no lessons found"
    for name in lessons:
        assert (ROOT / "solutions" / name).exists(), f"solutions/{name} is missing"
        assert (ROOT / "exercises" / name).exists(), f"exercises/{name} is missing: run tutorlib build-exercises"


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_lesson_has_five_registered_exercises(path):
    from tutorlib.grading import registry

    ids = _ids(path)
    assert len(ids) >= 5, f"{path.name} has {len(ids)} exercises; each lesson needs at least five"
    assert len(set(ids)) == len(ids)
    known = {ex.id for ex in registry.exercises()}
    assert not registry._IMPORT_ERRORS, f"check modules failed to import: {registry._IMPORT_ERRORS}"
    assert set(ids) <= known, f"no check registered for {sorted(set(ids) - known)}"


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solutions_get_full_marks(path):
    report = grade_notebook(path)
    bad = [(e.id, e.status, e.message) for e in report.exercises if e.status != "pass"]
    assert not bad, f"{path.name}: {bad}"
    assert report.total == report.max_total > 0
    # The notebook must run cleanly, not only score: a cell outside the exercises that raised is listed.
    assert not report.cell_errors, f"{path.name}: cells that raised: {[e.to_dict() for e in report.cell_errors]}"


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_untouched_exercises_score_zero(path):
    report = grade_notebook(ROOT / "exercises" / path.name)
    assert report.total == 0
    assert {e.status for e in report.exercises} == {"not_attempted"}, [(e.id, e.status, e.message) for e in report.exercises]


def test_manifest_lists_every_exercise():
    manifest = json.loads((ROOT / "exercises" / "manifest.json").read_text())
    text = json.dumps(manifest)
    for path in SOLUTIONS:
        for ex in _ids(path):
            assert ex in text, f"{ex} missing from exercises/manifest.json"
