"""Grading a class: -j 2 gives the -j 1 scores, resume grades only what is left, gradebook CSV, feedback, CPU limit.

Four students hand in lesson 00 (quick to grade): alice the solution, bob the untouched exercise notebook,
carol a wrong answer and a cell that raises, dave an answer that kills the kernel. The class is graded
once with ``-j 2`` through the command line (module fixture); the tests read its outputs.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from test_grader import EXERCISE, IDS, SOLUTION, make_notebook, statuses
from tutorlib.grading.__main__ import main
from tutorlib.grading.classroom import GradingState, find_submissions, grade_class
from tutorlib.grading.gradebook import by_student, feedback_text
from tutorlib.grading.grader import grade_notebook

# Kernels are slow to start: one worker grades the class once (under `pytest -n 2 --dist loadgroup`).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("grader_class")]


def _carol(nb: nbformat.NotebookNode) -> None:
    nb.cells.insert(2, nbformat.v4.new_code_cell("undefined_name + 1"))


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("class")
    sub = root / "submissions"
    for student in ("alice", "bob", "carol", "dave"):
        (sub / student).mkdir(parents=True)
    shutil.copy(SOLUTION, sub / "alice" / "00_welcome.ipynb")
    shutil.copy(EXERCISE, sub / "bob" / "00_welcome.ipynb")
    make_notebook(sub / "carol", "00_welcome.ipynb",
                  {"ex00_3": "def count_trainable(model):\n    return sum(p.numel() for p in model.parameters())"}, _carol)
    make_notebook(sub / "dave", "00_welcome.ipynb", {"ex00_1": "import os\ndef make_batch(n, device):\n    os._exit(1)"})
    out = root / "out"
    rc = main(["grade", str(sub), "-j", "2", "--state", str(out / "state"), "--json", str(out / "report.json"),
               "--gradebook", str(out / "grades.csv"), "--feedback", str(out / "feedback")])
    return {"rc": rc, "sub": sub, "out": out, "report": json.loads((out / "report.json").read_text())}


def _scores(notebooks: list[dict]) -> dict[str, dict[str, tuple[str, float]]]:
    return {Path(nb["path"]).parent.name: {i: (e["status"], e["score"]) for i, e in nb["exercises"].items()} for nb in notebooks}


def test_two_jobs_give_the_scores_of_one(graded: dict) -> None:
    assert graded["rc"] == 0
    parallel = _scores(graded["report"]["notebooks"])
    reports = grade_class(find_submissions([graded["sub"]]), jobs=1)
    serial = {Path(r.path).parent.name: {e.id: (e.status, e.score) for e in r.exercises} for r in reports}
    assert parallel == serial
    assert parallel["alice"] == {i: ("pass", p) for i, p in zip(IDS, [1, 1, 1, 2, 2])}
    assert {s for s, _ in parallel["bob"].values()} == {"not_attempted"}
    assert parallel["carol"]["ex00_3"] == ("fail", 0) and parallel["dave"]["ex00_1"] == ("crashed", 0)


def test_gradebook_has_one_row_per_student_and_a_column_per_exercise(graded: dict) -> None:
    rows = list(csv.reader((graded["out"] / "grades.csv").open(newline="")))
    assert rows == [
        ["student", *IDS, "total", "max"],
        ["alice", "1", "1", "1", "2", "2", "7", "7"],
        ["bob", "0", "0", "0", "0", "0", "0", "7"],
        ["carol", "1", "1", "0", "2", "2", "6", "7"],
        ["dave", "0", "1", "1", "2", "2", "6", "7"],
    ]


def test_feedback_names_the_first_thing_wrong_and_the_cell_that_raised(graded: dict) -> None:
    folder = graded["out"] / "feedback"
    assert sorted(p.name for p in folder.iterdir()) == ["alice.md", "bob.md", "carol.md", "dave.md"]
    carol = (folder / "carol.md").read_text()
    assert "# Feedback for carol: 6/7 points" in carol
    assert "| ex00_3 | failed | 0/1 | 0 |" in carol and "| ex00_1 | passed | 1/1 | 0 |" in carol
    assert "- ex00_3: " in carol and "wrong trainable-parameter count" in carol
    assert "NameError: name 'undefined_name' is not defined" in carol
    assert "- ex00_1: " in (folder / "dave.md").read_text() and "exited with code 1" in (folder / "dave.md").read_text()
    assert "What to fix" not in (folder / "alice.md").read_text()
    subs = find_submissions([graded["sub"]])
    kept = grade_class(subs, state=GradingState(graded["out"] / "state"))  # nothing graded: every result is kept
    students = by_student((s.student, r) for s, r in zip(subs, kept))
    page = feedback_text("carol", students["carol"], "html")
    assert page.startswith("<!DOCTYPE html>") and "wrong trainable-parameter count" in page and "<li>ex00_3: " in page


def _sha(path: Path) -> str:
    from tutorlib.grading.grader import sha256_file

    return sha256_file(path)


def test_a_rerun_grades_only_what_is_missing_or_changed(graded: dict, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    shutil.copytree(graded["out"] / "state", state_dir)
    subs = find_submissions([graded["sub"]])
    dave = next(s for s in subs if s.student == "dave")
    bob = next(s for s in subs if s.student == "bob")
    state = GradingState(state_dir)
    # as if the grader had been interrupted before dave's result was written
    state.file_for(dave.path, _sha(dave.path)).unlink()
    original = bob.path.read_bytes()
    try:
        nb = nbformat.read(bob.path, as_version=4)  # bob hands in ex00_1 again, now answered
        solved = {c.metadata["tutorlib"]["exercise"]: c.source for c in nbformat.read(SOLUTION, as_version=4).cells
                  if "exercise" in c.metadata.get("tutorlib", {})}
        for cell in nb.cells:
            if cell.metadata.get("tutorlib", {}).get("exercise") == "ex00_1":
                cell.source = solved["ex00_1"]
        nbformat.write(nb, bob.path)
        events: list[tuple[str, str]] = []
        reports = grade_class(subs, jobs=2, state=state, progress=lambda e, s, r: events.append((e, s.student)))
        assert sorted(s for e, s in events if e == "start") == ["bob", "dave"]
        assert sorted(s for e, s in events if e == "kept") == ["alice", "carol"]
        by_name = {Path(r.path).parent.name: r for r in reports}
        assert statuses(by_name["bob"])["ex00_1"] == "pass" and by_name["bob"].total == 1
        assert by_name["alice"].total == 7 and by_name["dave"].total == 6
        assert len(list(state_dir.glob("*.json"))) == 4  # bob's old result was replaced, not kept beside the new one
        again: list[str] = []
        grade_class(subs, jobs=2, state=state, progress=lambda e, s, r: again.append(e))
        assert again == ["kept"] * 4
        regraded: list[str] = []
        grade_class(subs[:1], state=state, regrade=True, progress=lambda e, s, r: regraded.append(e))
        assert regraded == ["start", "done"]
    finally:
        bob.path.write_bytes(original)


def test_the_cpu_limit_stops_a_busy_loop_and_names_the_limit(tmp_path: Path) -> None:
    path = make_notebook(tmp_path, "00_busy.ipynb", {"ex00_2": "x = 0\nwhile True:\n    x += 1"})
    # the setup cell takes about 2 s of CPU (importing torch); the wall-clock limit is far away
    report = grade_notebook(path, cpu_limit=6, timeouts={"ex00_2": 600})
    assert statuses(report) == {"ex00_1": "pass", "ex00_2": "crashed", "ex00_3": "crashed", "ex00_4": "crashed", "ex00_5": "crashed"}
    assert "over its CPU-time limit of 6 s (--cpu-limit)" in report.result("ex00_2").message
    assert report.result("ex00_3").message.startswith("not run: ") and "CPU-time limit of 6 s" in report.result("ex00_3").message
    assert report.total == 1


def test_a_kernel_burning_cpu_between_cells_is_stopped_by_the_rlimit_backstop(tmp_path: Path) -> None:
    import os
    import time

    from tutorlib.grading.grader import _Kernel, _kernel_env

    kernel = _Kernel(str(tmp_path), _kernel_env(None), 2**33, os.path.join(tmp_path, "log"), cpu_limit=2)
    kernel.start()
    try:
        burn = "import threading\nthreading.Thread(target=lambda: [0 for _ in iter(int, 1)], daemon=True).start()"
        assert kernel.execute(burn, 10).status == "ok"  # returns at once; the thread keeps burning, unwatched
        for _ in range(600):  # no cell runs, so only the kernel's own CPU-time rlimit can stop it
            if not kernel.alive():
                break
            time.sleep(0.1)
        outcome = kernel.execute("1 + 1", 10)
        assert outcome.status == "died" and "over its CPU-time limit of 2 s" in outcome.detail, outcome
        assert kernel.cpu_exhausted
    finally:
        kernel.stop()
