"""In-process ``check()``: messages for each kind of wrong answer, RNG and inputs left untouched, 10/10 on solutions."""

from __future__ import annotations

import importlib
import pkgutil
import random
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tutorlib.grading.checks as checks_pkg
from tutorlib.grading import CheckResult, check, register
from tutorlib.grading.compare import CheckFailed, call_safely, expect_close, expect_finite, expect_tensor
from tutorlib.grading.registry import UnknownExerciseError, exercises, run_check

REPO = Path(__file__).resolve().parents[1]
IDS = ["ex00_1", "ex00_2", "ex00_3", "ex00_4", "ex00_5"]


def solution_namespace() -> dict[str, Any]:
    """Run the solution notebook's code cells (not its check cells) and return the namespace."""
    nb = nbformat.read(REPO / "solutions" / "00_welcome.ipynb", as_version=4)
    ns: dict[str, Any] = {"__name__": "__main__"}
    for cell in nb.cells:
        if cell.cell_type == "code" and "check" not in cell.metadata.get("tutorlib", {}):
            exec(compile(cell.source, "<cell>", "exec"), ns)
    return ns


@pytest.fixture(scope="module")
def solved() -> dict[str, Any]:
    return solution_namespace()


def with_answer(solved: dict[str, Any], source: str) -> dict[str, Any]:
    ns = dict(solved)
    exec(compile(source, "<answer>", "exec"), ns)
    return ns


def fail_message(ex_id: str, ns: dict[str, Any]) -> str:
    result = run_check(ex_id, ns)
    assert result.status == "fail", result
    assert result.score == 0
    return result.message


def rng_state() -> tuple:
    return (random.getstate(), np.random.get_state()[1].tobytes(), torch.get_rng_state().clone())


def same_rng(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


# --------------------------------------------------------------------------- solutions


def test_solutions_pass_10_runs_out_of_10_with_different_inputs(solved: dict[str, Any]) -> None:
    for seed in range(10):
        for ex_id in IDS:
            result = run_check(ex_id, solved, seed=seed)
            assert result.status == "pass", f"run {seed}: {result}"
            assert result.score == result.max_score > 0


def test_check_prints_one_line_and_returns_a_result(solved: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    result = check("ex00_4", namespace=solved)
    assert isinstance(result, CheckResult) and result.passed
    assert capsys.readouterr().out == "✅ ex00_4 passed (2/2 points)\n"


def test_check_finds_the_callers_objects_without_a_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
        return (logits.argmax(dim=1) == labels).float().mean().item()

    assert check("ex00_2").status == "pass"
    assert capsys.readouterr().out.startswith("✅ ex00_2 passed")


def test_check_leaves_the_learners_random_state_and_threads_untouched(solved: dict[str, Any]) -> None:
    np.random.seed(3)
    torch.manual_seed(3)
    random.seed(3)
    consuming = with_answer(solved, "import random, numpy as np\n"
                            "def make_batch(n, device):\n    random.random(); np.random.rand()\n"
                            "    return torch.rand(n, 1, 8, 8, device=device)")
    threads = torch.get_num_threads()
    for ex_id, ns in [(i, solved) for i in IDS] + [("ex00_1", consuming), ("ex00_1", {})]:
        before = rng_state()
        run_check(ex_id, ns)
        assert same_rng(before, rng_state()), ex_id
        assert torch.get_num_threads() == threads  # checks run single-threaded, then restore the count


# --------------------------------------------------------------------------- missing / not attempted


def test_not_defined_and_not_callable() -> None:
    assert fail_message("ex00_1", {}) == (
        "`make_batch` is not defined: run the cell where you define it (and the cells above it), then check again"
    )
    assert "`accuracy` is a float, not a function" in fail_message("ex00_2", {"accuracy": 0.5})


def test_untouched_stub_is_not_attempted() -> None:
    exercise = (REPO / "exercises" / "00_welcome.ipynb")
    nb = nbformat.read(exercise, as_version=4)
    ns: dict[str, Any] = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and "check" not in cell.metadata.get("tutorlib", {}):
            exec(compile(cell.source, "<cell>", "exec"), ns)
    for ex_id in IDS:
        result = run_check(ex_id, ns)
        assert result.status == "not_attempted", result
        assert "still raises NotImplementedError" in result.message
        assert str(result).startswith(f"⏳ {ex_id} not attempted")


def test_unknown_id_lists_the_lessons_ids() -> None:
    with pytest.raises(UnknownExerciseError, match=r"unknown exercise id 'ex00_9': lesson 00 has ex00_1, ex00_2, ex00_3, ex00_4, ex00_5"):
        check("ex00_9", namespace={})


# --------------------------------------------------------------------------- tensors


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("return torch.rand(n, 8, 8, device=device)", "has shape (4, 8, 8), expected (4, 1, 8, 8)"),
        ("return torch.rand(n, 1, 8, 8, device=device, dtype=torch.float64)", "has dtype torch.float64, expected torch.float32"),
        ("return torch.rand(n, 1, 8, 8, device='meta')", "is on device meta, expected cpu"),
        ("return torch.rand(n, 1, 8, 8).tolist()", "is a list, expected a torch.Tensor"),
        ("torch.rand(n, 1, 8, 8, device=device)", "is None, expected a torch.Tensor: did you forget a `return` statement?"),
        ("return torch.rand(n, 1, 8, 8).numpy()", "is a NumPy array, expected a torch.Tensor"),
        ("return torch.randn(n, 1, 8, 8, device=device)", "expected them in [0, 1): use torch.rand"),
        ("return torch.full((n, 1, 8, 8), 0.5, device=device)", "should be random"),
        ("import numpy as np\n    return torch.from_numpy(np.random.rand(n, 1, 8, 8)).float()", "gives different images after the same torch.manual_seed"),
        ("x = torch.rand(n, 1, 8, 8, device=device)\n    x[0, 0, 0, 0] = float('nan')\n    return x", "contains NaN (1 of 256 values, the first at index (0, 0, 0, 0))"),
        ("x = torch.rand(n, 1, 8, 8, device=device)\n    x[-1, 0, 2, 3] = float('inf')\n    return x", "contains Inf (1 of 256 values, the first at index (3, 0, 2, 3))"),
    ],
)
def test_make_batch_messages(solved: dict[str, Any], body: str, expected: str) -> None:
    ns = with_answer(solved, f"def make_batch(n, device):\n    {body}")
    assert expected in fail_message("ex00_1", ns)


def test_values_off_names_the_largest_difference_and_where(solved: dict[str, Any]) -> None:
    ns = with_answer(solved, "def normalize(x, eps=1e-5):\n    d = tuple(range(1, x.dim()))\n"
                             "    return (x - x.mean(d, keepdim=True)) / (x.std(d, keepdim=True) + eps)")
    message = fail_message("ex00_5", ns)
    assert message.startswith("normalize(x) for a batch of images of shape (6, 1, 8, 8): values off: largest absolute difference ")
    assert " at index (" in message and "(got " in message and ", expected " in message
    assert message.endswith("you used the unbiased standard deviation: pass correction=0 (unbiased=False)")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("def normalize(x, eps=1e-5):\n    return (x - x.mean()) / (x.std(correction=0) + eps)", "you normalised the whole batch at once"),
        ("def normalize(x, eps=1e-5):\n    d = tuple(range(1, x.dim()))\n    x -= x.mean(d, keepdim=True)\n    x /= x.std(d, keepdim=True, correction=0) + eps\n    return x",
         "normalize changed its input `x` in place"),
        ("def normalize(x, eps=1e-5):\n    d = tuple(range(1, x.dim()))\n    return (x - x.mean(d, keepdim=True)) / x.std(d, keepdim=True, correction=0)",
         "for a table of shape (5, 10) with a constant row contains NaN (10 of 50 values, the first at index (2, 0))"),
        ("def normalize(x, eps=1e-5):\n    d = tuple(range(1, x.dim()))\n    return ((x - x.mean(d, keepdim=True)) / (x.std(d, keepdim=True, correction=0) + eps)).float()",
         "for a float64 batch has dtype torch.float32, expected torch.float64"),
    ],
)
def test_normalize_messages(solved: dict[str, Any], answer: str, expected: str) -> None:
    assert expected in fail_message("ex00_5", with_answer(solved, answer))


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("return (logits.argmax(1) == labels).float().mean()", "is a tensor of shape (), dtype torch.float32, on cpu, expected a Python float: call .item() on it"),
        ("return (logits.argmax(1) == labels).sum().item()", "you returned the number of correct predictions: divide by the batch size"),
        ("return 100 * (logits.argmax(1) == labels).float().mean().item()", "return a fraction between 0 and 1, not a percentage"),
        ("return (logits.argmax(0)[:len(labels)] == labels).float().mean().item()", "accuracy raised"),
        ("labels[0] = 99\n    return 0.0", "accuracy changed its input `labels` in place"),
    ],
)
def test_accuracy_messages(solved: dict[str, Any], answer: str, expected: str) -> None:
    ns = with_answer(solved, f"def accuracy(logits, labels):\n    {answer}")
    assert expected in fail_message("ex00_2", ns)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("return sum(p.numel() for p in model.parameters())", "wrong trainable-parameter count on a model whose first layer is frozen: got 682, expected 253: you counted the frozen parameters too"),
        ("return sum(1 for p in model.parameters() if p.requires_grad)", "you counted parameter tensors"),
        ("return sum(v.numel() for v in model.state_dict().values())", "state_dict() also holds buffers"),
        ("return float(sum(p.numel() for p in model.parameters() if p.requires_grad))", "is a float, expected a Python int"),
        ("[p.requires_grad_(True) for p in model.parameters()]\n    return 211", "count_trainable changed its input `model` in place"),
    ],
)
def test_count_trainable_messages(solved: dict[str, Any], answer: str, expected: str) -> None:
    ns = with_answer(solved, f"def count_trainable(model):\n    {answer}")
    assert expected in fail_message("ex00_3", ns)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("optimizer.zero_grad()\n    loss = F.cross_entropy(model(x), y)\n    optimizer.step()\n    return loss.item()",
         "gradient missing: after train_step some parameters have no .grad: call loss.backward()"),
        ("optimizer.zero_grad()\n    loss = F.cross_entropy(model(x), y)\n    loss.backward()\n    return loss.item()",
         "parameters unchanged after train_step: call optimizer.step() after loss.backward()"),
        ("loss = F.cross_entropy(model(x), y)\n    loss.backward()\n    optimizer.step()\n    return loss.item()",
         "call optimizer.zero_grad() at the start of train_step"),
        ("optimizer.zero_grad()\n    loss = F.mse_loss(model(x), F.one_hot(y, 4).float())\n    loss.backward()\n    optimizer.step()\n    return loss.item()",
         "the loss train_step returned (call 1): value off"),
        ("optimizer.zero_grad()\n    loss = F.cross_entropy(model(x), y)\n    loss.backward()\n    optimizer.step()\n    return F.cross_entropy(model(x), y).item()",
         "return the cross-entropy of model(x) and y computed before the step"),
        ("optimizer.zero_grad()\n    loss = F.cross_entropy(model(x), y)\n    (2 * loss).backward()\n    optimizer.step()\n    return loss.item()",
         "parameter 0.weight after call 1 of train_step: values off: largest absolute difference"),
        ("x.mul_(2)\n    optimizer.zero_grad()\n    loss = F.cross_entropy(model(x), y)\n    loss.backward()\n    optimizer.step()\n    return loss.item()",
         "train_step changed its input `x` in place"),
    ],
)
def test_train_step_messages(solved: dict[str, Any], body: str, expected: str) -> None:
    ns = with_answer(solved, f"def train_step(model, x, y, optimizer):\n    {body}")
    assert expected in fail_message("ex00_4", ns)


def test_train_step_whose_loss_does_not_fall(solved: dict[str, Any]) -> None:
    # Right for the two steps compared with the reference, then it stops updating.
    ns = with_answer(solved, (
        "calls = []\n"
        "def train_step(model, x, y, optimizer):\n"
        "    calls.append(1)\n"
        "    optimizer.zero_grad()\n    loss = F.cross_entropy(model(x), y)\n    loss.backward()\n"
        "    if len(calls) <= 2:\n        optimizer.step()\n"
        "    return loss.item()"
    ))
    assert "the loss did not fall over 15 more calls of train_step" in fail_message("ex00_4", ns)


# --------------------------------------------------------------------------- the machinery


def test_every_module_in_checks_is_discovered() -> None:
    modules = [m.name for m in pkgutil.iter_modules(checks_pkg.__path__) if not m.name.startswith("_")]
    assert "ex00" in modules
    exercises()  # triggers discovery
    from tutorlib.grading import registry

    assert registry._IMPORT_ERRORS == {}, f"check modules that fail to import: {registry._IMPORT_ERRORS}"
    for name in modules:
        assert f"{checks_pkg.__name__}.{name}" in importlib.sys.modules
    assert [e.id for e in exercises("00")] == IDS
    assert [e.points for e in exercises("00")] == [1, 1, 1, 2, 2]


def test_a_crashing_check_is_an_error_not_a_pass() -> None:
    @register("ex98_1", points=1)
    def _broken(ctx: Any) -> None:
        raise RuntimeError("bug in the check")

    result = run_check("ex98_1", {})
    assert (result.status, result.score) == ("error", 0)
    assert "the check itself crashed (RuntimeError: bug in the check)" in result.message


def test_registering_an_id_twice_from_different_functions_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        @register("ex00_1")
        def other(ctx: Any) -> None:  # pragma: no cover - never called
            pass


def test_call_safely_turns_errors_and_exit_into_failures_and_learner_stubs_into_not_attempted() -> None:
    def exits(x: torch.Tensor) -> None:
        raise SystemExit(0)

    def placeholder(x: torch.Tensor) -> None:
        raise NotImplementedError

    with pytest.raises(CheckFailed, match=r"called sys.exit\(\)"):
        call_safely(exits, torch.ones(1), name="exits")
    from tutorlib.grading.compare import NotAttempted

    with pytest.raises(NotAttempted):
        call_safely(placeholder, torch.ones(1), name="placeholder")
    original = torch.ones(3)
    call_safely(lambda t: t.add_(1), original, name="adder", mutable=(0,))
    assert torch.equal(original, torch.full((3,), 2.0))  # a mutable argument is passed through as is


def test_compare_helpers_messages() -> None:
    with pytest.raises(CheckFailed, match=r"^y: value off: got 1\.5, expected 1 \(absolute difference 0\.5\)$"):
        expect_close(1.5, 1.0, "y")
    with pytest.raises(CheckFailed, match=r"largest absolute difference 3 at index \(1, 0\)"):
        expect_close(torch.tensor([[0.0], [3.0]]), torch.zeros(2, 1), "z")
    expect_close(torch.tensor([1.0, float("nan")]), torch.tensor([1.0, float("nan")]), "nan in both is equal")
    with pytest.raises(CheckFailed, match="reshape it"):
        expect_tensor(torch.zeros(4, 64), "x", shape=(4, 1, 8, 8))
    expect_finite(torch.tensor([1, 2]), "integers are always finite")
    assert F.relu(torch.tensor(-1.0)).item() == 0.0  # torch is still usable after the checks above
