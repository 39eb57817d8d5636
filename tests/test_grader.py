"""The notebook grader on real kernels: solutions, untouched exercises and bad submissions.

Each bad-submission notebook is generated from ``solutions/00_welcome.ipynb`` by replacing some
answer cells, so exercises that are not part of a scenario keep the correct answer and must still
pass: that is how "the rest is still graded" is verified. Several scenarios share one notebook
where they do not interfere, to keep this module to about two minutes on 2 CPU cores.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from tutorlib.grading.__main__ import main
from tutorlib.grading.grader import NotebookError, NotebookReport, grade_notebook

REPO = Path(__file__).resolve().parents[1]
SOLUTION = REPO / "solutions" / "00_welcome.ipynb"
EXERCISE = REPO / "exercises" / "00_welcome.ipynb"
IDS = ["ex00_1", "ex00_2", "ex00_3", "ex00_4", "ex00_5"]
POINTS = {"ex00_1": 1, "ex00_2": 1, "ex00_3": 1, "ex00_4": 2, "ex00_5": 2}


def _meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("tutorlib", {})


def make_notebook(
    tmp_path: Path,
    name: str,
    answers: dict[str, str] | None = None,
    transform: Callable[[nbformat.NotebookNode], None] | None = None,
) -> Path:
    """The solution notebook with some answer cells replaced (and an optional further edit)."""
    nb = nbformat.read(SOLUTION, as_version=4)
    for cell in nb.cells:
        ex = _meta(cell).get("exercise")
        if answers and ex in answers:
            cell.source = answers[ex]
    if transform is not None:
        transform(nb)
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def statuses(report: NotebookReport) -> dict[str, str]:
    return {e.id: e.status for e in report.exercises}


def msg(report: NotebookReport, ex_id: str) -> str:
    return report.result(ex_id).message


def assert_rest_pass(report: NotebookReport, ids: list[str]) -> None:
    for ex_id in ids:
        res = report.result(ex_id)
        assert res.status == "pass", f"{ex_id}: {res.status}: {res.message}"
        assert res.score == POINTS[ex_id]


# --------------------------------------------------------------------------- good notebooks


@pytest.mark.parametrize("run", [1, 2])
def test_solutions_get_full_marks_and_the_file_is_not_written(tmp_path: Path, run: int) -> None:
    path = tmp_path / "00_welcome.ipynb"
    path.write_bytes(SOLUTION.read_bytes())
    before = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    report = grade_notebook(path)
    assert report.error is None
    assert_rest_pass(report, IDS)
    assert (report.total, report.max_total) == (7, 7)
    assert report.kernel_restarts == 0
    assert report.sha256 == before[0]
    assert report.environment["torch"] not in ("", "unknown")
    assert (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns) == before
    assert sorted(os.listdir(tmp_path)) == ["00_welcome.ipynb"]  # nothing written next to it either


def test_untouched_exercises_score_zero_and_are_not_attempted() -> None:
    report = grade_notebook(EXERCISE)
    assert statuses(report) == {i: "not_attempted" for i in IDS}
    assert report.total == 0 and report.max_total == 7
    assert "NotImplementedError" in msg(report, "ex00_1")


# --------------------------------------------------------------------------- wrong answers


def test_an_exception_fails_only_its_exercise_and_wrong_answers_get_precise_messages(tmp_path: Path) -> None:
    path = make_notebook(tmp_path, "00_errors.ipynb", {
        "ex00_1": "def make_batch(n, device):\n    return torch.rand(n, 1, 8, 8, device=device)\n\n1 / 0",
        "ex00_2": "def accuracy(logits, labels):\n    return [0.5][3]",
        "ex00_3": "def count_trainable(model):\n    return sum(p.numel() for p in model.parameters())",
        "ex00_4": (
            "def train_step(model, x, y, optimizer):\n"
            "    loss = F.cross_entropy(model(x), y)\n    loss.backward()\n    optimizer.step()\n    return loss.item()"
        ),
        "ex00_5": "def normalize(x, eps=1e-5):\n    x -= x.mean(dim=tuple(range(1, x.dim())), keepdim=True)\n    return x",
    })
    report = grade_notebook(path)
    assert statuses(report) == {"ex00_1": "error", "ex00_2": "fail", "ex00_3": "fail", "ex00_4": "fail", "ex00_5": "fail"}
    assert report.total == 0
    assert msg(report, "ex00_1") == "the answer cell raised ZeroDivisionError: division by zero"
    assert "accuracy raised IndexError: list index out of range" in msg(report, "ex00_2")
    assert "wrong trainable-parameter count" in msg(report, "ex00_3") and "frozen" in msg(report, "ex00_3")
    assert "optimizer.zero_grad()" in msg(report, "ex00_4")
    assert "changed its input `x` in place" in msg(report, "ex00_5")


def test_nan_device_none_list_and_tensor_instead_of_float_are_named(tmp_path: Path) -> None:
    path = make_notebook(tmp_path, "00_values.ipynb", {
        "ex00_1": "def make_batch(n, device):\n    return torch.rand(n, 1, 8, 8, device='meta')",
        "ex00_2": "def accuracy(logits, labels):\n    (logits.argmax(1) == labels).float().mean().item()",
        "ex00_3": "def count_trainable(model):\n    return [p.numel() for p in model.parameters() if p.requires_grad]",
        "ex00_4": (
            "def train_step(model, x, y, optimizer):\n    optimizer.zero_grad()\n"
            "    loss = F.cross_entropy(model(x), y)\n    loss.backward()\n    optimizer.step()\n    return loss"
        ),
        "ex00_5": (
            "def normalize(x, eps=1e-5):\n    d = tuple(range(1, x.dim()))\n"
            "    return (x - x.mean(d, keepdim=True)) / x.std(d, keepdim=True, correction=0)"
        ),
    })
    report = grade_notebook(path)
    assert set(statuses(report).values()) == {"fail"}
    assert "is on device meta, expected cpu" in msg(report, "ex00_1")
    assert "is None" in msg(report, "ex00_2") and "Python float" in msg(report, "ex00_2")
    assert "is a list" in msg(report, "ex00_3") and "expected a Python int" in msg(report, "ex00_3")
    assert "is a tensor" in msg(report, "ex00_4") and ".item()" in msg(report, "ex00_4")
    assert "contains NaN" in msg(report, "ex00_5") and "at index (2," in msg(report, "ex00_5")


# --------------------------------------------------------------------------- runaway code


def test_endless_loops_time_out_within_the_limit_and_the_rest_is_graded(tmp_path: Path) -> None:
    limit = 3.0
    path = make_notebook(tmp_path, "00_loops.ipynb", {
        # in the answer cell itself
        "ex00_1": "while True:\n    pass",
        # in the function, so during the check; and it swallows the interrupt, so the kernel must be killed
        "ex00_2": (
            "import time\n"
            "def accuracy(logits, labels):\n    while True:\n        try:\n            time.sleep(0.05)\n"
            "        except KeyboardInterrupt:\n            pass"
        ),
        # in the function, interruptible
        "ex00_3": "def count_trainable(model):\n    n = 0\n    while True:\n        n += 1",
    })
    report = grade_notebook(path, timeouts={"ex00_1": limit, "ex00_2": limit, "ex00_3": limit})
    assert statuses(report) == {"ex00_1": "timeout", "ex00_2": "timeout", "ex00_3": "timeout", "ex00_4": "pass", "ex00_5": "pass"}
    for ex_id in ("ex00_1", "ex00_2", "ex00_3"):
        assert report.result(ex_id).seconds <= limit + 5, report.result(ex_id)
        assert report.result(ex_id).score == 0
    assert "time limit of 3 s" in msg(report, "ex00_1")
    assert "restarted" in msg(report, "ex00_2")
    assert report.kernel_restarts == 1
    assert_rest_pass(report, ["ex00_4", "ex00_5"])


def test_kernel_death_and_huge_allocation_crash_only_their_exercise(tmp_path: Path) -> None:
    path = make_notebook(tmp_path, "00_crash.ipynb", {
        # the kernel dies inside the check
        "ex00_1": "import os\ndef make_batch(n, device):\n    os._exit(1)",
        # the answer cell grows far beyond the memory limit
        "ex00_3": "hog = bytearray(3 * 2**30)\ndef count_trainable(model):\n    return 0",
    })
    report = grade_notebook(path, memory_limit=2**30)
    assert statuses(report) == {"ex00_1": "crashed", "ex00_2": "pass", "ex00_3": "crashed", "ex00_4": "pass", "ex00_5": "pass"}
    assert "exited with code 1" in msg(report, "ex00_1") and "restarted" in msg(report, "ex00_1")
    assert "memory" in msg(report, "ex00_3") and "restarted" in msg(report, "ex00_3")
    assert report.kernel_restarts == 2
    assert_rest_pass(report, ["ex00_2", "ex00_4", "ex00_5"])


# --------------------------------------------------------------------------- tricks that must not pass


def test_exit_input_huge_output_and_a_fake_check_never_pass(tmp_path: Path) -> None:
    fake = "print('✅ ex00_2 passed (1/1 point)')\nprint('{\"id\": \"ex00_2\", \"status\": \"pass\", \"score\": 1}')"
    path = make_notebook(tmp_path, "00_tricks.ipynb", {
        "ex00_1": "import sys\ndef make_batch(n, device):\n    return torch.zeros(n, 8, 8)\nsys.exit()",
        "ex00_2": (
            "def accuracy(logits, labels):\n    return 0.0\n"
            "check = lambda *a, **k: True\n" + fake
        ),
        "ex00_3": "n = int(input('how many? '))\ndef count_trainable(model):\n    return n",
        "ex00_4": "print('x' * 100_000_000)\ndef train_step(model, x, y, optimizer):\n    return 0.0",
        "ex00_5": 'def normalize(x, eps=1e-5):\n    raise NotImplementedError("ex00_5: write your answer here")\n' + fake.replace("ex00_2", "ex00_5"),
    })
    report = grade_notebook(path)
    assert report.total == 0
    assert statuses(report) == {"ex00_1": "error", "ex00_2": "fail", "ex00_3": "error", "ex00_4": "fail", "ex00_5": "not_attempted"}
    assert "SystemExit" in msg(report, "ex00_1")
    assert "input()" in msg(report, "ex00_3")
    assert report.result("ex00_4").seconds < 30


def test_deleted_duplicated_and_reordered_cells(tmp_path: Path) -> None:
    def edit(nb: nbformat.NotebookNode) -> None:
        setup = [c for c in nb.cells if "runtime.setup" in c.source]
        answer = {_meta(c)["exercise"]: c for c in nb.cells if "exercise" in _meta(c)}
        wrong2, wrong3 = copy.deepcopy(answer["ex00_2"]), copy.deepcopy(answer["ex00_3"])
        wrong2.id, wrong3.id = "copy-of-ex2", "copy-of-ex3"
        wrong2.source = "def accuracy(logits, labels):\n    return 1.0"
        wrong3.source = "def count_trainable(model):\n    return -1"
        del answer["ex00_4"].metadata["tutorlib"]  # its metadata is lost: the code is there, unmarked
        # Prompts and check cells deleted, exercises reordered, ex00_5 deleted, ex00_2 and ex00_3 duplicated:
        # the last copy of an answer cell is the one graded.
        nb.cells = setup + [wrong3, answer["ex00_3"], answer["ex00_4"], answer["ex00_2"], answer["ex00_1"], wrong2]

    path = make_notebook(tmp_path, "00_cells.ipynb", transform=edit)
    report = grade_notebook(path)
    assert statuses(report) == {"ex00_1": "pass", "ex00_2": "fail", "ex00_3": "pass", "ex00_4": "pass", "ex00_5": "missing"}
    assert "checked at the end" in msg(report, "ex00_4")
    assert "no answer cell for ex00_5" in msg(report, "ex00_5") and "`normalize` is not defined" in msg(report, "ex00_5")
    assert report.total == 1 + 1 + 2


# --------------------------------------------------------------------------- the command line


def _raising_cell_and_a_hint(nb: nbformat.NotebookNode) -> None:
    nb.cells.insert(2, nbformat.v4.new_code_cell("\nundefined_name + 1  # a cell outside the exercises"))
    shown = nbformat.v4.new_output("stream", name="stdout", text="💡 ex00_1 hint 2 of 2: the shape is (n, 1, 8, 8)\n")
    nb.cells.insert(3, nbformat.v4.new_code_cell('hint("ex00_1")', metadata={"tutorlib": {"hint": "ex00_1"}}, outputs=[shown]))


def test_cli_table_json_and_exit_code_2_for_a_corrupt_notebook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = make_notebook(tmp_path, "00_shape.ipynb", {
        "ex00_1": "def make_batch(n, device):\n    return torch.rand(n, 64, device=device)",
        "ex00_5": "def normalize(x, eps=1e-5):\n    d = tuple(range(1, x.dim()))\n"
                  "    return ((x - x.mean(d, keepdim=True)) / (x.std(d, keepdim=True, correction=0) + eps)).float()",
    }, transform=_raising_cell_and_a_hint)
    corrupt = tmp_path / "00_corrupt.ipynb"
    corrupt.write_text(SOLUTION.read_text()[:700])
    out = tmp_path / "report.json"
    rc = main(["grade", str(good), str(corrupt), "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 2
    assert "00_corrupt.ipynb: CANNOT GRADE" in text and "not valid JSON" in text
    assert "ex00_1     fail" in text and "has shape (4, 64), expected (4, 1, 8, 8)" in text
    assert "Not a sandbox" in text
    data = json.loads(out.read_text())
    shape_nb, corrupt_nb = data["notebooks"]
    assert corrupt_nb["graded"] is False and "not valid JSON" in corrupt_nb["error"]
    assert shape_nb["sha256"] == hashlib.sha256(good.read_bytes()).hexdigest()
    assert shape_nb["total"] == 4 and shape_nb["max_total"] == 7 and shape_nb["device"] == "cpu"
    assert shape_nb["python"] and shape_nb["torch"]
    ex5 = shape_nb["exercises"]["ex00_5"]
    assert ex5["status"] == "fail" and "dtype torch.float32, expected torch.float64" in ex5["message"]
    assert set(ex5) == {"id", "status", "score", "max_score", "seconds", "message", "seed", "hints"}
    assert isinstance(ex5["seed"], int) and isinstance(shape_nb["seed"], int) and ex5["hints"] == 0
    assert shape_nb["exercises"]["ex00_1"]["hints"] == 2  # what the saved outputs say was shown
    # A cell outside the exercises that raised is listed (issue 24): its index, first line and exception line.
    assert shape_nb["cell_errors"] == [{"cell": 2, "source": "undefined_name + 1  # a cell outside the exercises",
                                        "error": "NameError: name 'undefined_name' is not defined"}]
    assert "1 cell outside the exercises did not run cleanly" in text and "cell 2" in text


@pytest.mark.parametrize("content", ["{not json", '{"a": 1}', ""])
def test_a_file_that_is_not_a_notebook_cannot_be_graded(tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "00_bad.ipynb"
    bad.write_text(content)
    with pytest.raises(NotebookError, match="00_bad.ipynb"):
        grade_notebook(bad)
    assert main(["grade", str(bad)]) == 2
    assert "CANNOT GRADE" in capsys.readouterr().out


def test_a_notebook_without_exercises_cannot_be_graded(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    path = tmp_path / "scratch.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(NotebookError, match="no exercises found"):
        grade_notebook(path)


# --------------------------------------------------------------------------- tampering (issue 22)

# The false pass the issue reproduced: one cell at the top of the untouched exercise notebook.
ISSUE_TAMPER = (
    "import tutorlib.grading.registry as _r\n"
    '_r.run_check = lambda eid, ns, **k: _r.CheckResult(eid, "pass", "passed", 1, 1)'
)
# Routes that hide the grading import from the grader's source scan; each earns nothing anyway,
# because a protocol check's pass is decided by `compare` in the grader's own process.
_HIDDEN = "import importlib\ng = lambda m: importlib.import_module('tutorlib.' + m)\n"
TAMPER_ROUTES = {
    "registry": _HIDDEN + (
        "_r = g('grading.registry')\n"
        "_r.run_check = lambda eid, ns, **k: _r.CheckResult(eid, 'pass', 'passed', 1, 1)\n"
        "_r.get_exercise('ex00_1')  # discover the checks\n"
        "for _e in list(_r._REGISTRY.values()):\n"
        "    _r._REGISTRY[_e.id] = _r.Exercise(_e.id, lambda ctx: None, _e.points, _e.timeout)"
    ),
    "checks": _HIDDEN + (
        "_c = g('grading.checks.ex00')\n"
        "for _k in (_c.MakeBatchCheck, _c.AccuracyCheck, _c.CountTrainableCheck, _c.TrainStepCheck, _c.NormalizeCheck):\n"
        "    _k.compare = lambda self, inputs, outputs: None\n"
        "    _k.call = lambda self, learner, inputs: [0.5, 0.5, 0.5]"
    ),
    "helpers_and_torch": _HIDDEN + (
        "_h = g('grading.compare')\n"
        "_h.expect_close = _h.expect_tensor = _h.expect_number = _h.expect_finite = lambda *a, **k: a[0] if a else None\n"
        "_h.call_safely = lambda fn, *a, **k: 0.5\n"
        "torch.allclose = torch.equal = lambda *a, **k: True\n"
        "import builtins\nbuiltins.isinstance = lambda obj, cls: True if cls is float else type(obj) is cls or issubclass(type(obj), cls)\n"
        "builtins.NotImplementedError = type('Sneaky', (Exception,), {})"
    ),
    "hook_and_files": _HIDDEN + (
        "import json, os, tempfile, threading, time\n"
        "_k = g('grading._gradehook')\n"
        "def _fake(eid, i, o, **k):\n"
        "    with open(o + '.json', 'w') as fh:\n"
        "        json.dump({'meta': {'id': eid, 'status': 'pass'}, 'data': None, 'id': eid, 'status': 'pass', 'score': 2}, fh)\n"
        "_k.run_call = _k.report = _fake\n"
        "def _flood():  # overwrite every result file the grader might read, all the time\n"
        "    while True:\n"
        "        for d in os.listdir(tempfile.gettempdir()):\n"
        "            if d.startswith('tutorlib-'):\n"
        "                p = os.path.join(tempfile.gettempdir(), d)\n"
        "                try:\n"
        "                    for f in os.listdir(p):\n"
        "                        if f.endswith('.json'):\n"
        "                            _fake(f.split('-')[0], '', os.path.join(p, f[:-5]))\n"
        "                except OSError:\n"
        "                    pass\n"
        "        time.sleep(0.001)\n"
        "threading.Thread(target=_flood, daemon=True).start()\n"
        "print('✅ ex00_1 passed (1/1 point)')"
    ),
    "check_function": _HIDDEN + (
        "_p = g('grading')\n"
        "_p.check = check = lambda *a, **k: True\n"
        "globals()['hint'] = check\n"
        "setattr(_p, 'hint', check)"
    ),
}


def _exercise_with(tmp_path: Path, name: str, source: str, at: int) -> Path:
    nb = nbformat.read(EXERCISE, as_version=4)
    nb.cells.insert(at, nbformat.v4.new_code_cell(source))
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def test_the_issues_two_line_tamper_earns_nothing_and_is_reported(tmp_path: Path) -> None:
    path = _exercise_with(tmp_path, "00_tamper.ipynb", ISSUE_TAMPER, 0)
    before = path.read_bytes()
    report = grade_notebook(path)
    assert report.total == 0, statuses(report)
    assert set(statuses(report).values()) == {"fail"}
    for ex_id in IDS:
        assert "the notebook imports the grading code (cell 0: `import tutorlib.grading.registry as _r`" in msg(report, ex_id)
        assert "not_attempted" in msg(report, ex_id)  # what the check itself found: the stubs are untouched
    assert path.read_bytes() == before


@pytest.mark.parametrize("route", sorted(TAMPER_ROUTES))
def test_hidden_tampering_routes_earn_nothing(tmp_path: Path, route: str) -> None:
    path = _exercise_with(tmp_path, f"00_{route}.ipynb", TAMPER_ROUTES[route], 2)  # after the setup cell
    before = path.read_bytes()
    report = grade_notebook(path)
    assert report.total == 0, [(e.id, e.status, e.message) for e in report.exercises]
    assert "pass" not in statuses(report).values()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [path.name]


def test_a_planted_report_and_a_link_at_its_temporary_name_change_nothing(tmp_path: Path) -> None:
    out = tmp_path / "grades.json"
    canary = tmp_path / "canary.txt"
    canary.write_text("untouched")
    plant = (
        "import json, os\n"
        f"json.dump({{'total': 7, 'max_total': 7}}, open({str(out)!r}, 'w'))\n"
        f"os.symlink({str(canary)!r}, {str(out) + '.tmp'!r})\n"
        f"os.chmod({str(tmp_path)!r}, 0o755)"
    )
    path = _exercise_with(tmp_path, "00_planted.ipynb", plant, 2)
    assert main(["grade", str(path), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["total"] == 0 and data["notebooks"][0]["total"] == 0
    assert canary.read_text() == "untouched"


@pytest.mark.parametrize("answer, where", [
    ("from tutorlib.frontiers import fgsm", "the source"),  # found by the grader's scan of the notebook
    ("import tutorlib.frontiers as tf\nfgsm = getattr(tf, 'fg' + 'sm')", "the run"),  # hidden: found in the kernel
])
def test_an_answer_that_is_the_librarys_own_implementation_fails(tmp_path: Path, answer: str, where: str) -> None:
    nb = nbformat.read(REPO / "exercises" / "13_frontiers.ipynb", as_version=4)
    for cell in nb.cells:
        if _meta(cell).get("exercise") == "ex13_3":
            cell.source = answer
    path = tmp_path / "13_frontiers.ipynb"
    nbformat.write(nb, path)
    report = grade_notebook(path, timeouts={"ex13_7": 5})
    res = report.result("ex13_3")
    assert res.status == "fail" and res.score == 0, res
    assert "your answer uses the library's own implementation `tutorlib.frontiers" in res.message
    assert "write it yourself" in res.message
