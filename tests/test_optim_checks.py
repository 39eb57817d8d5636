"""The lesson-01 exercise checks: right answers pass, typical mistakes get the precise message."""

from __future__ import annotations

import math

import torch

from tutorlib.grading.registry import run_check
from mutants_table import own
from tutorlib.optim import adam_step, lamb_step, sgd_momentum_step, warmup_cosine
from tutorlib.train import History

_sgd, _adam, _wc = own(sgd_momentum_step), own(adam_step), own(warmup_cosine)


def _status(ex: str, ns: dict) -> tuple[str, str]:
    r = run_check(ex, ns, device="cpu")
    return r.status, r.message


def test_reference_answers_pass() -> None:
    for ex, ns in (("ex01_1", {"sgd_momentum_step": own(sgd_momentum_step)}), ("ex01_2", {"adam_step": own(adam_step)}),
                   ("ex01_3", {"lamb_step": own(lamb_step)}), ("ex01_4", {"warmup_cosine": own(warmup_cosine)})):
        assert _status(ex, ns)[0] == "pass", ex


def test_the_library_s_own_functions_are_flagged() -> None:
    status, msg = _status("ex01_2", {"adam_step": adam_step})
    assert status == "fail" and "library's own implementation" in msg


def test_stubs_are_not_attempted_and_rng_is_untouched() -> None:
    def stub(*args, **kwargs):
        raise NotImplementedError("ex01_1: write your answer here")

    state = torch.get_rng_state()
    assert _status("ex01_1", {"sgd_momentum_step": stub})[0] == "not_attempted"
    assert torch.equal(state, torch.get_rng_state())
    assert "not defined" in _status("ex01_2", {})[1]


def test_momentum_mistakes_are_named() -> None:
    def dampened(param, grad, buf, lr, momentum, nesterov=False):
        new_buf = grad.clone() if buf is None else momentum * buf + (1 - momentum) * grad
        return param - lr * new_buf, new_buf

    def no_nesterov(param, grad, buf, lr, momentum, nesterov=False):
        return _sgd(param, grad, buf, lr, momentum, nesterov=False)

    def in_place(param, grad, buf, lr, momentum, nesterov=False):
        new_p, new_b = _sgd(param, grad, buf, lr, momentum, nesterov)
        param.copy_(new_p)
        return param, new_b

    assert "(1 - momentum)" in _status("ex01_1", {"sgd_momentum_step": dampened})[1]
    assert "nesterov=True" in _status("ex01_1", {"sgd_momentum_step": no_nesterov})[1]
    assert "in place" in _status("ex01_1", {"sgd_momentum_step": in_place})[1]


def test_adam_and_lamb_mistakes_are_named() -> None:
    def no_bias_correction(param, grad, m, v, step, lr, betas=(0.9, 0.999), eps=1e-8):
        m = betas[0] * m + (1 - betas[0]) * grad
        v = betas[1] * v + (1 - betas[1]) * grad**2
        return param - lr * m / (v.sqrt() + eps), m, v

    def no_trust_ratio(param, grad, m, v, step, lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0):
        new_p, m, v = _adam(param, grad, m, v, step, lr, betas, eps)
        return new_p - lr * weight_decay * param, m, v

    status, msg = _status("ex01_2", {"adam_step": no_bias_correction})
    assert status == "fail" and "bias-correct" in msg
    status, msg = _status("ex01_3", {"lamb_step": no_trust_ratio})
    assert status == "fail" and "trust ratio" in msg


def test_warmup_mistakes_are_named() -> None:
    def off_by_one(step, total_steps, warmup_steps, base_lr, min_lr=0.0):
        if step < warmup_steps:
            return base_lr * (step + 1) / warmup_steps
        return _wc(step, total_steps, warmup_steps, base_lr, min_lr)

    assert "warmup starts at 0" in _status("ex01_4", {"warmup_cosine": off_by_one})[1]
    assert "Python float" in _status("ex01_4", {"warmup_cosine": lambda *a: torch.tensor(0.1)})[1]


class _Finder:
    lrs = [10 ** (-5 + 0.1 * i) for i in range(50)]
    smoothed = [2.3 - 1.5 / (1 + math.exp(-3 * (math.log10(lr) + 3))) + max(0.0, math.log10(lr) + 1) * 3 for lr in lrs]
    min_loss_lr = lrs[smoothed.index(min(smoothed))]

    def loss_at(self, lr: float) -> float:
        i = min(range(len(self.lrs)), key=lambda k: abs(math.log(self.lrs[k]) - math.log(lr)))
        return self.smoothed[i]


def test_chosen_lr_is_judged_against_the_curve() -> None:
    finder = _Finder()
    assert _status("ex01_5", {"finder": finder, "chosen_lr": 1e-3})[0] == "pass"
    assert "flat start" in _status("ex01_5", {"finder": finder, "chosen_lr": 2e-5})[1]
    assert "past the minimum" in _status("ex01_5", {"finder": finder, "chosen_lr": 0.5})[1]
    assert "Python float" in _status("ex01_5", {"finder": finder, "chosen_lr": torch.tensor(1e-3)})[1]


def _history(lrs: list[float], acc: float) -> History:
    return History([{"epoch": 0, "train_loss": 1.0, "val_accuracy": acc}], [{"step": i, "loss": 1.0, "lr": lr}
                                                                             for i, lr in enumerate(lrs)])


def test_schedule_experiment_checks_the_recorded_rates() -> None:
    good = [warmup_cosine(i + 1, 20, 2, 3e-3) for i in range(20)]
    runs = {"constant": _history([3e-3] * 20, 0.9), "warmup_cosine": _history(good, 0.92)}
    assert _status("ex01_6", {"schedule_runs": runs, "best_schedule": "warmup_cosine"})[0] == "pass"
    assert "below the other run" in _status("ex01_6", {"schedule_runs": runs, "best_schedule": "constant"})[1]
    wrong_total = [warmup_cosine(i + 1, 40, 2, 3e-3) for i in range(20)]  # built for 40 steps, ran 20
    runs_bad = {"constant": runs["constant"], "warmup_cosine": _history(wrong_total, 0.92)}
    assert "do not follow warmup_cosine" in _status("ex01_6", {"schedule_runs": runs_bad, "best_schedule": "warmup_cosine"})[1]
    assert "keys 'constant' and 'warmup_cosine'" in _status("ex01_6", {"schedule_runs": {}, "best_schedule": "x"})[1]
