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


def test_sweep_and_plot_reading_checks() -> None:
    results = {0.0: _run(1.0, 0.8), 0.3: _run(0.97, 0.85), 0.6: _run(0.9, 0.86)}
    gaps = {k: r.train_accuracy - r.val_accuracy for k, r in results.items()}
    assert _status("ex02_5", {"sweep_results": results, "gaps": gaps, "best_rate": 0.6})[0] == "pass"
    assert "smaller gap" in _status("ex02_5", {"sweep_results": results, "gaps": gaps, "best_rate": 0.3})[1]
    flipped = {k: -v for k, v in gaps.items()}
    assert "wrong sign" in _status("ex02_5", {"sweep_results": results, "gaps": flipped, "best_rate": 0.6})[1]

    h = _run(1.0, 0.9, [2.0, 1.0, 0.5, 0.4, 0.45, 0.6, 0.8, 1.0]).history
    assert _status("ex02_6", {"overfit_history": h, "best_epoch": 4})[0] == "pass"
    sharp = _run(1.0, 0.9, [2.0, 1.5, 1.2, 0.3, 1.2, 1.5, 1.8, 2.0]).history
    assert "counted from 1" in _status("ex02_6", {"overfit_history": sharp, "best_epoch": 3})[1]  # a 0-based answer
    assert "well above" in _status("ex02_6", {"overfit_history": h, "best_epoch": 8})[1]
    assert "epochs 1 to 8" in _status("ex02_6", {"overfit_history": h, "best_epoch": 0})[1]
