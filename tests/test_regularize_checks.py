"""The lesson-02 exercise checks: right answers pass, typical mistakes get the precise message."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tutorlib.grading.registry import run_check
from tutorlib.regularize import RegConfig, RunResult, dropout, l1_penalty, label_smoothing_loss, shift_image, smooth_targets
from tutorlib.train import History


def _status(ex: str, ns: dict) -> tuple[str, str]:
    r = run_check(ex, ns, device="cpu")
    return r.status, r.message


def test_reference_answers_pass() -> None:
    assert _status("ex02_1", {"l1_penalty": l1_penalty})[0] == "pass"
    assert _status("ex02_2", {"dropout": lambda x, p, training=True: dropout(x, p, training)})[0] == "pass"
    assert _status("ex02_3", {"shift_image": shift_image})[0] == "pass"
    ns = {"smooth_targets": smooth_targets, "smoothed_cross_entropy": label_smoothing_loss}
    assert _status("ex02_4", ns)[0] == "pass"


def test_l1_mistakes() -> None:
    with_bias = lambda m: sum(p.abs().sum() for p in m.parameters())  # noqa: E731
    as_float = lambda m: l1_penalty(m).item()  # noqa: E731
    assert "biases" in _status("ex02_1", {"l1_penalty": with_bias})[1]
    assert "return the tensor" in _status("ex02_1", {"l1_penalty": as_float})[1]


def test_dropout_mistakes() -> None:
    def keep_p(x, p, training=True):
        return x * (torch.rand(x.shape) < p) / (1 - p) if training and p else x

    def no_scale(x, p, training=True):
        return x * (torch.rand(x.shape) >= p) if training and p < 1 else (x if not training or p == 0 else x * 0)

    def numpy_rng(x, p, training=True):
        import numpy as np

        if not training or p == 0:
            return x
        if p == 1:
            return x * 0
        return x * torch.from_numpy(np.random.rand(*x.shape) >= p).to(x.dtype) / (1 - p)

    assert "probability to DROP" in _status("ex02_2", {"dropout": keep_p})[1]
    assert "divide them by (1 - p)" in _status("ex02_2", {"dropout": no_scale})[1]
    assert "torch.manual_seed" in _status("ex02_2", {"dropout": numpy_rng})[1]


def test_shift_and_smoothing_mistakes() -> None:
    rolled = lambda x, dx, dy: torch.roll(x, shifts=(dy, dx), dims=(-2, -1))  # noqa: E731
    assert "torch.roll wraps" in _status("ex02_3", {"shift_image": rolled})[1]
    swapped = lambda x, dx, dy: shift_image(x, dy, dx)  # noqa: E731
    assert "dx moves along the width" in _status("ex02_3", {"shift_image": swapped})[1]

    def other_convention(t, c, eps):
        oh = F.one_hot(t, c).float()
        return oh * (1 - eps) + (1 - oh) * eps / (c - 1)

    ns = {"smooth_targets": other_convention, "smoothed_cross_entropy": label_smoothing_loss}
    assert "eps / C" in _status("ex02_4", ns)[1]
    summed = lambda lg, t, eps: label_smoothing_loss(lg, t, eps) * lg.shape[0]  # noqa: E731
    assert "take the mean" in _status("ex02_4", {"smooth_targets": smooth_targets, "smoothed_cross_entropy": summed})[1]


def _run(train: float, val: float, val_losses: list[float] | None = None) -> RunResult:
    eps = [{"epoch": i, "val_loss": v} for i, v in enumerate(val_losses or [1.0])]
    return RunResult(RegConfig(), History(eps), nn.Linear(1, 1), train, val, 0.1, 0.5)


def _real_sweep() -> dict:
    """The exercise's sweep, small: the lesson's MLP once per dropout rate, measured on the full validation digits."""
    from tutorlib.data import load_digits
    from tutorlib.models import MLP
    from tutorlib.regularize import dropout_sweep

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return dropout_sweep([0.0, 0.4, 0.8], lambda p: MLP(64, [256, 256], 10, dropout=p), load_digits("train", limit=48),
                             load_digits("val"), epochs=3, base=RegConfig(lr=3e-3), progress=False)


def test_sweep_check_uses_the_lessons_criterion_and_re_measures_the_runs() -> None:
    results = _real_sweep()
    gaps = {k: r.train_accuracy - r.val_accuracy for k, r in results.items()}
    best = max(results, key=lambda k: (results[k].val_accuracy, -results[k].val_loss))
    ns = {"sweep_results": results, "gaps": gaps, "best_rate": best}
    assert _status("ex02_5", ns) == ("pass", f"dropout {best} has the best validation accuracy ({results[best].val_accuracy:.3f})")
    worse = min(results, key=lambda k: (results[k].val_accuracy, -results[k].val_loss))
    if results[worse].val_accuracy < results[best].val_accuracy:
        assert "validation accuracy" in _status("ex02_5", dict(ns, best_rate=worse))[1]
    smallest = min(gaps, key=gaps.get)
    if results[smallest].val_accuracy < results[best].val_accuracy:  # issue 22: the smallest gap used to be graded right
        status, message = _status("ex02_5", dict(ns, best_rate=smallest))
        assert status == "fail" and "smallest gap" in message
    flipped = {k: -v for k, v in gaps.items()}
    assert "wrong sign" in _status("ex02_5", dict(ns, gaps=flipped))[1]
    # Made-up results fail: hand-made RunResults, or real ones with an edited validation accuracy.
    made_up = {0.0: _run(1.0, 0.8), 0.3: _run(0.97, 0.85), 0.6: _run(0.9, 0.86)}
    made_gaps = {k: r.train_accuracy - r.val_accuracy for k, r in made_up.items()}
    status, message = _status("ex02_5", {"sweep_results": made_up, "gaps": made_gaps, "best_rate": 0.6})
    assert status == "fail" and "is not the lesson's MLP" in message
    import dataclasses

    edited = dict(results)
    edited[worse] = dataclasses.replace(results[worse], val_accuracy=results[worse].val_accuracy + 0.2)
    edited_gaps = {k: r.train_accuracy - r.val_accuracy for k, r in edited.items()}
    status, message = _status("ex02_5", {"sweep_results": edited, "gaps": edited_gaps, "best_rate": worse})
    assert status == "fail" and "its own model measures" in message


def test_plot_reading_check() -> None:
    h = _run(1.0, 0.9, [2.0, 1.0, 0.5, 0.4, 0.45, 0.6, 0.8, 1.0]).history
    assert _status("ex02_6", {"overfit_history": h, "best_epoch": 4})[0] == "pass"
    sharp = _run(1.0, 0.9, [2.0, 1.5, 1.2, 0.3, 1.2, 1.5, 1.8, 2.0]).history
    assert "counted from 1" in _status("ex02_6", {"overfit_history": sharp, "best_epoch": 3})[1]  # a 0-based answer
    assert "well above" in _status("ex02_6", {"overfit_history": h, "best_epoch": 8})[1]
    assert "epochs 1 to 8" in _status("ex02_6", {"overfit_history": h, "best_epoch": 0})[1]
