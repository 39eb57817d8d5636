"""The check protocol in one process: registration, check() via inputs→call→compare, plain data, hints, references."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from tutorlib.grading import check, exercise, hint
from tutorlib.grading.compare import CheckFailed, expect_close, expect_tensor
from tutorlib.grading.protocol import Learner, judge, make_inputs, run_in_process, uses_reference
from tutorlib.grading.registry import default_seed, get_exercise, run_check
from tutorlib.grading.wire import encode, load, roundtrip, save

SEEN: list[int] = []


@exercise("ex97_1", points=2, timeout=30)
class ScaleCheck:
    """``scale(x, k)`` returns ``k * x``."""

    names = ("scale",)
    reference = ("tutorlib.grading.compare.describe",)  # stands in for "the library's own implementation"
    hints = ("multiply", "return k * x")

    def inputs(self, gen: torch.Generator) -> dict:
        SEEN.append(int(torch.randint(0, 10**9, (1,), generator=gen)))
        return {"cases": [{"x": torch.randn(3, 4, generator=gen), "k": 2.5}, {"x": torch.randn(5, generator=gen), "k": -1.0}]}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn = learner.function("scale")
        torch.rand(3)  # consumes the global RNG: check() must restore the learner's state
        return [learner.call(fn, c["x"], c["k"]) for c in inputs["cases"]]

    def compare(self, inputs: dict, outputs: list) -> str | None:
        for c, out in zip(inputs["cases"], outputs):
            expect_tensor(out, "scale(x, k)", shape=c["x"].shape, device=self.device)
            expect_close(out, c["k"] * c["x"], "scale(x, k)", hint="multiply every value by k")
        return None


def good(x: torch.Tensor, k: float) -> torch.Tensor:
    return k * x


def test_a_protocol_check_is_registered_with_its_points_hints_and_check_object() -> None:
    ex = get_exercise("ex97_1")
    assert (ex.points, ex.timeout, ex.hints) == (2, 30.0, ("multiply", "return k * x"))
    assert isinstance(ex.check, ScaleCheck) and ex.check.id == "ex97_1"


def test_ids_stay_unique_and_a_check_needs_all_three_parts() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        @exercise("ex97_1")
        class Other:
            def inputs(self, gen): return {}
            def call(self, learner, inputs): return None
            def compare(self, inputs, outputs): return None
    with pytest.raises(TypeError, match="no method `compare`"):
        @exercise("ex97_9")
        class Half:
            def inputs(self, gen): return {}
            def call(self, learner, inputs): return None


def test_check_runs_all_three_parts_with_the_fixed_seed_and_keeps_the_learner_rng(capsys) -> None:
    random.seed(3); np.random.seed(3); torch.manual_seed(3)
    before = (random.getstate(), np.random.get_state()[1].tobytes(), torch.get_rng_state().clone())
    SEEN.clear()
    result = check("ex97_1", namespace={"scale": good})
    assert result.passed and result.score == 2
    assert capsys.readouterr().out == "✅ ex97_1 passed (2/2 points)\n"
    check("ex97_1", namespace={"scale": good})
    assert SEEN[0] == SEEN[1]  # the same inputs every time in the notebook
    assert SEEN[0] == int(torch.randint(0, 10**9, (1,), generator=torch.Generator().manual_seed(default_seed("ex97_1"))))
    after = (random.getstate(), np.random.get_state()[1].tobytes(), torch.get_rng_state())
    assert before[0] == after[0] and before[1] == after[1] and torch.equal(before[2], after[2])


@pytest.mark.parametrize("source, status, words", [
    ("def scale(x, k):\n    raise NotImplementedError('ex97_1: write your answer here')", "not_attempted", "NotImplementedError"),
    ("def scale(x, k):\n    return x + k", "fail", "multiply every value by k"),
    ("def scale(x, k):\n    x *= k\n    return x", "fail", "changed its input `x` in place"),
    ("def scale(x, k):\n    return torch.nn.Linear(2, 2)", "fail", "return its weights (model.state_dict())"),
    ("def scale(x, k):\n    return (k * x).numpy()", "fail", "torch.from_numpy"),
    ("def scale(x, k):\n    return lambda: k * x", "fail", "cannot be sent to the grader"),
    ("def scale(x, k):\n    return (k * x).to('meta')", "fail", "on device meta, expected cpu"),
    ("scale = 3", "fail", "not a function"),
    ("", "fail", "`scale` is not defined"),
    ("from tutorlib.grading.compare import describe as scale", "fail", "library's own implementation"),
    ("import tutorlib.grading.compare as C\ndef scale(x, k):\n    C.describe(x)\n    return k * x", "fail",
     "library's own implementation `tutorlib.grading.compare.describe`"),
])
def test_wrong_answers_get_the_protocol_messages(source: str, status: str, words: str) -> None:
    ns: dict = {"torch": torch}
    exec(source, ns)
    result = run_check("ex97_1", ns, device="cpu")
    assert result.status == status, result
    assert words in result.message and result.score == 0


def test_judge_decides_in_this_process_on_plain_data() -> None:
    chk = get_exercise("ex97_1").check
    inputs = make_inputs(chk, 12345)
    right = [c["k"] * c["x"] for c in inputs["cases"]]
    assert judge(chk, inputs, roundtrip(right)) == ("pass", "passed")
    status, message = judge(chk, inputs, [torch.zeros(3, 4), torch.zeros(5)])
    assert status == "fail" and "largest absolute difference" in message
    assert judge(chk, inputs, "nonsense")[0] in ("fail", "error")
    assert judge(chk, inputs, None)[0] != "pass"


def test_run_in_process_fails_a_different_seed_made_up_answer() -> None:
    chk = get_exercise("ex97_1").check
    precomputed = [c["k"] * c["x"] for c in make_inputs(chk, default_seed("ex97_1"))["cases"]]
    assert run_in_process(chk, {"scale": good}, torch.device("cpu"), 7) is None
    with pytest.raises(CheckFailed):
        answers = iter(precomputed)
        run_in_process(chk, {"scale": lambda x, k: next(answers)}, torch.device("cpu"), 7)


def test_plain_data_roundtrip_and_files(tmp_path) -> None:
    data = {"w": torch.arange(6.0).reshape(2, 3).t(), "ids": torch.tensor([1, 2]), "flag": True, "n": 3, "f": float("nan"),
            "s": "x", "none": None, "tup": (1, [2.0, {"k": torch.ones(1, dtype=torch.float64)}]), "dt": torch.float16,
            "dev": torch.device("cpu"), 7: "int key", "g": torch.ones(2, requires_grad=True) * 2}
    for back in (roundtrip(data), None):
        if back is None:
            save(data, str(tmp_path / "x"), {"status": "ok"})
            back, meta = load(str(tmp_path / "x"))
            assert meta == {"status": "ok"}
        assert torch.equal(back["w"], data["w"]) and back["w"].is_contiguous()
        assert back["ids"].dtype == torch.int64 and back["flag"] is True and back["n"] == 3 and np.isnan(back["f"])
        assert back["tup"][1][1]["k"].dtype == torch.float64 and isinstance(back["tup"], tuple)
        assert back["dt"] is torch.float16 and back["dev"] == torch.device("cpu") and back[7] == "int key"
        assert back["g"].requires_grad and back["g"].grad_fn is None
    js, tensors = encode(torch.zeros(2, device="meta"))
    assert tensors == {} and js["device"] == "meta"
    assert roundtrip(torch.zeros(2, device="meta")).device.type == "meta"
    with pytest.raises(CheckFailed, match=r"the result at \[0\]\['m'\] is a Linear"):
        encode([{"m": torch.nn.Linear(1, 1)}])
    with pytest.raises(CheckFailed, match="NumPy float64"):
        encode(np.float64(1.0))


def test_a_float_subclass_that_claims_equality_crosses_as_a_plain_float() -> None:
    class Liar(float):
        def __eq__(self, other): return True
        __hash__ = float.__hash__

    back = roundtrip([Liar(0.25)])
    assert type(back[0]) is float and back[0] != 0.5


def test_hints_one_at_a_time(capsys) -> None:
    hint("ex97_1"); hint("ex97_1"); hint("ex97_1", 1)
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["💡 ex97_1 hint 1 of 2: multiply", "💡 ex97_1 hint 2 of 2: return k * x", "💡 ex97_1 hint 1 of 2: multiply"]
    with pytest.raises(ValueError, match="hints 1 to 2"):
        hint("ex97_1", 3)


def test_uses_reference_sees_aliases_and_wrappers() -> None:
    import functools

    from tutorlib.grading.compare import describe

    ref = ("tutorlib.grading.compare.describe",)
    assert uses_reference(functools.wraps(describe)(lambda x: describe(x)), ref)
    assert uses_reference(lambda x: x, ref) is None
    assert uses_reference(good, ()) is None


# --------------------------------------------------------------------------- the grader's source scan


def test_the_source_scan_finds_grading_imports_and_the_reference_in_answer_cells_only() -> None:
    from tutorlib.grading.grader import _Cell, _static_findings

    ex = get_exercise("ex97_1")
    setup = _Cell(0, "import torch\nfrom tutorlib.grading import check, hint\nfrom tutorlib.grading import compare as C")
    answer = _Cell(1, "def scale(x, k):\n    C.describe(x)\n    return k * x", exercise="ex97_1")
    own = _Cell(2, "import tutorlib.grading.registry  # the notebook's own check cell is not scanned", is_check=True)
    demo = _Cell(3, "print(C.describe(torch.ones(1)))")  # the library used outside the answer: fine
    found = _static_findings([setup, answer, own, demo], {"ex97_1": ex})
    assert found["ex97_1"].startswith("the notebook imports the grading code (cell 0: `from tutorlib.grading import compare as C`")
    setup.source = "import torch\nimport tutorlib.grading.compare as C\n"
    assert "imports the grading code" in _static_findings([setup, answer], {"ex97_1": ex})["ex97_1"]
    # A reference that is not grading code (re-exported under another name) is found in the answer cell only.
    import tutorlib.grading.compare as compare_module

    reference = ("tutorlib.grading.compare.describe",)
    from tutorlib.grading import static

    aliases = static.imports_of("from tutorlib.grading.compare import describe as d")
    assert static.reference_uses("y = d(x)", reference, aliases) == list(reference)
    assert static.reference_uses("def d(x):\n    return 1\ny = d(x)", reference, aliases) == []
    assert compare_module.describe is not None


@pytest.mark.parametrize("folder", ["solutions", "exercises"])
def test_no_course_notebook_trips_the_source_scan(folder: str) -> None:
    from pathlib import Path

    import nbformat

    from tutorlib.grading import static

    for path in sorted((Path(__file__).resolve().parents[1] / folder).glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(nb.cells):
            meta = cell.get("metadata", {}).get("tutorlib", {})
            if cell.cell_type == "code" and "check" not in meta and "hint" not in meta:
                assert static.grading_imports(cell.source) == [], f"{path.name} cell {i}"
