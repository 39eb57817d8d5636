"""Stored lesson outputs stay honest: a code cell edited after its outputs were stored fails the suite, and
exercise and solution notebooks carry no outputs."""

from __future__ import annotations

import nbformat
import pytest
from notebook_runner import ROOT

from tutorlib.grading.stored import has_outputs, provenance_of, source_sha, stale_cells, stamp_cells

LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
STUDENT = sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb")) + sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_stored_lesson_outputs_match_their_code(path):
    nb = nbformat.read(path, as_version=4)
    if not has_outputs(nb):
        assert provenance_of(nb) is None, f"{path.name} has provenance but no outputs"
        return
    prov = provenance_of(nb)
    assert prov, (f"notebooks/{path.name} has outputs but no provenance: store it with "
                  f"`bash run.sh execute {path.name[:2]}`, or clear its outputs")
    assert prov["mode"] == "full", f"notebooks/{path.name} stores a {prov['mode']}-mode run: store a full run"
    for key in ("date", "machine", "torch", "device", "wall_seconds", "peak_mib", "tutorlib_sha"):
        assert key in prov, f"notebooks/{path.name}: provenance lacks {key!r}"
    stale = stale_cells(nb)
    assert not stale, (f"notebooks/{path.name}: " + "; ".join(map(str, stale))
                       + f". Re-run and store it: `bash run.sh execute {path.name[:2]}`")


@pytest.mark.parametrize("path", STUDENT, ids=[f"{p.parent.name}/{p.stem}" for p in STUDENT])
def test_exercise_and_solution_notebooks_have_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    assert not has_outputs(nb), f"{path.parent.name}/{path.name} has outputs: clear them (Edit → Clear Outputs of All Cells)"


def test_stale_cells_name_edited_and_added_cells():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_code_cell("print(x)")])
    stamp_cells(nb)
    assert stale_cells(nb) == []
    nb.cells[1].source = "x = 2"  # edited
    nb.cells.append(nbformat.v4.new_code_cell("y = 3"))  # added
    stale = stale_cells(nb)
    assert [(c.index, c.first_line) for c in stale] == [(1, "x = 2"), (3, "y = 3")]
    assert "changed" in stale[0].reason and "added" in stale[1].reason
    # whitespace at line ends does not count as a change
    assert source_sha("a = 1   \nb = 2\n\n") == source_sha("a = 1\nb = 2")


def test_store_writes_provenance_and_refresh_sees_edits(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("course_bench", ROOT / "benchmarks" / "course.py")
    course = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(course)
    path = tmp_path / "99_demo.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    nbformat.write(nb, path)
    assert course.needs_refresh(path) == "never stored executed"
    result = course.run_lesson(path, smoke=False, timeout=120, store_it=True)
    assert result["error"] == "" and result["threads"] >= 1
    stored = nbformat.read(path, as_version=4)
    assert len(stored.cells) == 1 and stored.cells[0].outputs[0]["text"] == "42\n"  # the measuring cell is gone
    assert provenance_of(stored)["mode"] == "full" and course.needs_refresh(path) == ""
    stored.cells[0].source = "print(6 * 9)"
    nbformat.write(stored, path)
    assert "changed" in course.needs_refresh(path)
