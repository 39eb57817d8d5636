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


def _course():
    import importlib.util

    spec = importlib.util.spec_from_file_location("course_bench", ROOT / "benchmarks" / "course.py")
    course = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(course)
    return course


def test_readme_lesson_table_matches_the_stored_runs():
    course = _course()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert course.readme_table(readme, ROOT / "notebooks") == readme, (
        "README.md's lesson table is not the one the stored notebooks' provenance gives: "
        "run `python benchmarks/course.py --readme`")


def test_readme_table_marks_busy_runs_and_adds_a_gpu_column_only_for_gpu_runs(tmp_path):
    course = _course()
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    base = {"mode": "full", "machine": "EPYC, 2 cores", "threads": 1, "wall_seconds": 100.0, "cpu_seconds": 60.0,
            "peak_mib": 2048, "date": "2026-12-05 03:00 UTC", "tutorlib_sha": "x", "torch": "2"}
    runs = {"00_a": dict(base, device="cpu", load_start=0.1, load_end=1.0),
            "01_b": dict(base, device="cpu", load_start=3.9, load_end=4.4),
            "02_c": None}
    for stem, prov in runs.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# Lesson {stem}"),
                                             nbformat.v4.new_code_cell("1", execution_count=1 if prov else None)])
        if prov:
            nb.metadata["tutorlib"] = {"provenance": prov}
        nbformat.write(nb, nbdir / f"{stem}.ipynb")
    readme = f"# R\n\n## The lessons\n\n{course.TABLE_START}\n| 00 | [A](notebooks/00_a.ipynb) | kept words | 1 s | 1 MiB |\n{course.TABLE_END}\n\nafter\n"
    out = course.readme_table(readme, nbdir)
    rows = {ln[2:4]: ln for ln in out.splitlines() if ln[:2] == "| " and ln[2:4].isdigit()}
    assert "kept words" in rows["00"] and "100 s (60 s CPU)" in rows["00"] and "2.0 GiB" in rows["00"]
    assert "100 s* (60 s CPU)" in rows["01"] and "01 (3.9 → 4.4)" in out  # busy: marked, load named
    assert "Lesson 02_c" in rows["02"] and "not stored yet" in rows["02"]
    assert "GPU" not in out.splitlines()[6] and out.endswith("after\n")
    assert course.readme_table(out, nbdir) == out  # a second run changes nothing
    gpu = dict(base, device="cuda:0 (NVIDIA H200)", load_start=0.0, load_end=0.5)
    nb = nbformat.read(nbdir / "02_c.ipynb", as_version=4)
    nb.metadata["tutorlib"] = {"provenance": gpu}
    nb.cells[1].execution_count = 1
    nbformat.write(nb, nbdir / "02_c.ipynb")
    out = course.readme_table(out, nbdir)
    assert "GPU: wall (kernel CPU)" in out and "no GPU run stored" in out and "NVIDIA H200" in out
    with pytest.raises(ValueError, match="markers"):
        course.readme_table("# R\n", nbdir)


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_stored_lessons_stay_small(path):
    from tutorlib.grading.stored import compact_images, compact_widget_state

    nb = nbformat.read(path, as_version=4)
    assert compact_widget_state(nb) == 0 and compact_images(nb) == 0, (
        f"notebooks/{path.name} carries unused widget state or uncompressed large figures: "
        "run `python benchmarks/course.py --compact`")
    assert path.stat().st_size < 3_000_000, f"notebooks/{path.name} is {path.stat().st_size / 1e6:.1f} MB: keep a lesson under 3 MB"
