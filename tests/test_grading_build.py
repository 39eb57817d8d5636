"""The exercise builder: exercises/ is up to date, stubs replace answers, and malformed solutions are rejected."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tutorlib.grading.__main__ import main
from tutorlib.grading.build import BuildError, build_exercises, render_exercises, stale_files

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS, EXERCISES = REPO / "solutions", REPO / "exercises"


# --------------------------------------------------------------------------- the real repository


def test_exercises_folder_is_exactly_what_the_builder_produces(tmp_path: Path) -> None:
    written = build_exercises(SOLUTIONS, tmp_path)
    assert {p.name for p in written} == {p.name for p in SOLUTIONS.glob("*.ipynb")} | {"manifest.json"}
    for path in written:
        committed = EXERCISES / path.name
        assert committed.exists(), f"{committed} is missing: run `tutorlib build-exercises`"
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} is out of date with solutions/: run `tutorlib build-exercises` (never edit exercises/ by hand)"
        )
    assert stale_files(SOLUTIONS, EXERCISES) == []


def test_rebuilding_is_byte_identical(tmp_path: Path) -> None:
    first = {p.name: p.read_bytes() for p in build_exercises(SOLUTIONS, tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in build_exercises(SOLUTIONS, tmp_path / "b")}
    assert first == second


def test_welcome_exercises_hide_answers_keep_prompts_and_metadata() -> None:
    sol = nbformat.read(SOLUTIONS / "00_welcome.ipynb", as_version=4)
    ex = nbformat.read(EXERCISES / "00_welcome.ipynb", as_version=4)
    assert len(sol.cells) == len(ex.cells)
    ids = []
    for s, e in zip(sol.cells, ex.cells):
        assert s.cell_type == e.cell_type and s.get("id") == e.get("id")
        if s.cell_type == "markdown":
            assert s.source == e.source
            continue
        assert e.outputs == [] and e.execution_count is None
        ast.parse(e.source)
        assert e.metadata.get("tutorlib") == s.metadata.get("tutorlib")
        ex_id = s.metadata.get("tutorlib", {}).get("exercise")
        if ex_id:
            ids.append(ex_id)
            assert "SOLUTION" not in e.source
            assert f'raise NotImplementedError("{ex_id}: write your answer here")' in e.source
            assert e.source != s.source
            assert e.source.split("\n")[0] == s.source.split("\n")[0]  # the def line (signature) is kept
        else:
            assert e.source == s.source
    assert ids == ["ex00_1", "ex00_2", "ex00_3", "ex00_4", "ex00_5"]
    assert ex.metadata["tutorlib"] == {"lesson": "00", "generated_from": "solutions/00_welcome.ipynb"}


def test_manifest_lists_ids_points_and_time_limits() -> None:
    manifest = json.loads((EXERCISES / "manifest.json").read_text())
    entry = manifest["notebooks"]["00_welcome.ipynb"]
    assert [(e["id"], e["points"], e["timeout"]) for e in entry["exercises"]] == [
        ("ex00_1", 1, 60.0), ("ex00_2", 1, 60.0), ("ex00_3", 1, 60.0), ("ex00_4", 2, 60.0), ("ex00_5", 2, 60.0)
    ]
    assert entry["total_points"] == 7 and entry["lesson"] == "00"


def test_exercise_notebook_runs_top_to_bottom_and_every_check_says_not_attempted(capsys: pytest.CaptureFixture[str]) -> None:
    nb = nbformat.read(EXERCISES / "00_welcome.ipynb", as_version=4)
    namespace: dict = {"__name__": "__main__"}
    for cell in nb.cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, "<cell>", "exec"), namespace)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("✅", "❌", "⏳"))]
    assert lines == [l for l in lines if l.startswith("⏳")] and len(lines) == 5, lines


def test_solution_notebook_runs_and_every_check_passes(capsys: pytest.CaptureFixture[str]) -> None:
    nb = nbformat.read(SOLUTIONS / "00_welcome.ipynb", as_version=4)
    namespace: dict = {"__name__": "__main__"}
    for cell in nb.cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, "<cell>", "exec"), namespace)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("✅", "❌", "⏳"))]
    assert len(lines) == 5 and all(line.startswith("✅") for line in lines), lines


# --------------------------------------------------------------------------- malformed solutions


def _solution(tmp_path: Path, answer: str, *, meta: dict | None = None, check: bool = True, name: str = "00_demo.ipynb",
              extra: list | None = None) -> Path:
    folder = tmp_path / "solutions"
    folder.mkdir(exist_ok=True)
    answer_cell = new_code_cell(answer)
    answer_cell.metadata["tutorlib"] = {"exercise": "ex00_1", "points": 1} if meta is None else meta
    cells = [new_markdown_cell("# prompt"), new_code_cell("import torch"), answer_cell]
    if check:
        c = new_code_cell('check("ex00_1")')
        c.metadata["tutorlib"] = {"check": "ex00_1"}
        cells.append(c)
    cells += extra or []
    nb = new_notebook(cells=cells)
    for i, c in enumerate(nb.cells):
        c.id = f"c{i}"
    nbformat.write(nb, folder / name)
    return folder


GOOD = "def make_batch(n, device):\n    # BEGIN SOLUTION\n    return torch.rand(n, 1, 8, 8, device=device)\n    # END SOLUTION\n"


def test_a_minimal_solution_builds(tmp_path: Path) -> None:
    files = render_exercises(_solution(tmp_path, GOOD))
    nb = nbformat.reads(files["00_demo.ipynb"].decode(), as_version=4)
    assert nb.cells[2].source == 'def make_batch(n, device):\n    raise NotImplementedError("ex00_1: write your answer here")\n'


@pytest.mark.parametrize(
    ("answer", "kwargs", "message"),
    [
        ("def f():\n    # BEGIN SOLUTION\n    return 1\n", {}, r"00_demo\.ipynb, cell 2: '# BEGIN SOLUTION' on line 2 is never closed"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n# END SOLUTION\n", {}, r"cell 2: .*is nested inside"),
        ("def f():\n    return 1\n", {}, r"cell 2: exercise ex00_1 has no solution region"),
        (GOOD, {"check": False}, r"cell 2: exercise ex00_1 has no check cell after it"),
        (GOOD, {"meta": {"exercise": "ex00_1", "points": 5}}, r"ex00_1 has 5 points in the notebook but 1 in its registered check"),
        (GOOD, {"meta": {"exercise": "ex00_1", "points": 1, "timeout": 5}}, r"timeout 5 s in the notebook but 60 s"),
        (GOOD, {"meta": {"exercise": "ex00_1"}}, r"needs positive \"points\""),
        (GOOD, {"meta": {"exercise": "ex01_1", "points": 1}}, r"must look like 'ex00_N' in lesson 00"),
        (GOOD.replace("ex00_1", "x"), {"meta": {"exercise": "ex00_77", "points": 1}}, r"no check is registered for ex00_77"),
        (GOOD, {"name": "welcome.ipynb"}, r"must be named NN_topic\.ipynb"),
    ],
)
def test_malformed_solutions_are_rejected_with_notebook_and_cell(tmp_path: Path, answer: str, kwargs: dict, message: str) -> None:
    with pytest.raises(BuildError, match=message):
        render_exercises(_solution(tmp_path, answer, **kwargs))


def test_an_id_that_repeats_is_rejected(tmp_path: Path) -> None:
    again = new_code_cell(GOOD)
    again.metadata["tutorlib"] = {"exercise": "ex00_1", "points": 1}
    with pytest.raises(BuildError, match=r"cell 4: exercise id ex00_1 repeats: it is already used in solutions/00_demo\.ipynb, cell 2"):
        render_exercises(_solution(tmp_path, GOOD, extra=[again]))


def test_an_id_that_repeats_across_notebooks_is_rejected(tmp_path: Path) -> None:
    _solution(tmp_path, GOOD, name="00_a.ipynb")
    folder = _solution(tmp_path, GOOD, name="00_b.ipynb")
    with pytest.raises(BuildError, match=r"00_b\.ipynb, cell 2: exercise id ex00_1 repeats.*00_a\.ipynb, cell 2"):
        render_exercises(folder)


def test_markers_outside_an_exercise_cell_are_rejected(tmp_path: Path) -> None:
    stray = new_code_cell("y = 2  # SOLUTION")
    with pytest.raises(BuildError, match=r"cell 4: has solution markers but no exercise metadata"):
        render_exercises(_solution(tmp_path, GOOD, extra=[stray]))


def test_nothing_is_written_when_a_solution_is_malformed(tmp_path: Path) -> None:
    folder = _solution(tmp_path, "# BEGIN SOLUTION\nx = 1\n")
    with pytest.raises(BuildError):
        build_exercises(folder, tmp_path / "exercises")
    assert not (tmp_path / "exercises").exists()


# --------------------------------------------------------------------------- the command


def test_cli_check_reports_stale_exercises_and_build_fixes_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    solutions = _solution(tmp_path, GOOD)
    out = tmp_path / "exercises"
    assert main(["build-exercises", "--solutions", str(solutions), "--exercises", str(out), "--check"]) == 1
    assert "00_demo.ipynb: missing" in capsys.readouterr().out
    assert main(["build-exercises", "--solutions", str(solutions), "--exercises", str(out)]) == 0
    assert main(["build-exercises", "--solutions", str(solutions), "--exercises", str(out), "--check"]) == 0
    capsys.readouterr()
    # Someone edits the generated notebook by hand: --check names the cell and the change.
    nb = json.loads((out / "00_demo.ipynb").read_text())
    nb["cells"][2]["source"] = ["def make_batch(n, device):\n", "    return None\n"]
    (out / "00_demo.ipynb").write_text(json.dumps(nb))
    assert main(["build-exercises", "--solutions", str(solutions), "--exercises", str(out), "--check"]) == 1
    text = capsys.readouterr().out
    assert "00_demo.ipynb: cell 2 differs" in text and "run `tutorlib build-exercises`" in text


def test_cli_build_exits_2_with_the_error_for_a_malformed_solution(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    solutions = _solution(tmp_path, "# END SOLUTION\n")
    assert main(["build-exercises", "--solutions", str(solutions), "--exercises", str(tmp_path / "e")]) == 2
    assert "has no matching '# BEGIN SOLUTION'" in capsys.readouterr().out
