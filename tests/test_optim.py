"""tutorlib.optim: from-scratch optimizers against torch.optim and the LAMB paper, schedules, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from tutorlib.optim import (LAMB, OPTIMIZER_NAMES, Adam, SGDMomentum, adam_step, lamb_step, lr_trace, make_optimizer,
                            make_scheduler, scheduler_factory, sgd_momentum_step, warmup_cosine)


def _params(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(5, 3, generator=g), torch.randn(3, generator=g), torch.randn(2, 2, 2, generator=g)]


def _run_pair(ours_cls, ref_cls, ours_kw, ref_kw, steps: int = 6, seed: int = 0):
    """Same initial params, same gradients each step: return (our params, torch's params) after ``steps`` steps."""
    init = _params(seed)
    a = [torch.nn.Parameter(p.clone()) for p in init]
    b = [torch.nn.Parameter(p.clone()) for p in init]
    opt_a, opt_b = ours_cls(a, **ours_kw), ref_cls(b, **ref_kw)
    g = torch.Generator().manual_seed(seed + 100)
    for _ in range(steps):
        for pa, pb in zip(a, b):
            grad = torch.randn(pa.shape, generator=g) * 3
            pa.grad, pb.grad = grad.clone(), grad.clone()
        opt_a.step()
        opt_b.step()
    return a, b


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_sgd_momentum_matches_torch(nesterov: bool, wd: float) -> None:
    kw = dict(lr=0.05, momentum=0.9, nesterov=nesterov, weight_decay=wd)
    ours, ref = _run_pair(SGDMomentum, torch.optim.SGD, kw, kw)
    for pa, pb in zip(ours, ref):
        torch.testing.assert_close(pa.detach(), pb.detach(), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("decoupled,ref", [(False, torch.optim.Adam), (True, torch.optim.AdamW)])
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adam_matches_torch(decoupled: bool, ref, wd: float) -> None:
    ours_kw = dict(lr=0.01, betas=(0.8, 0.99), eps=1e-8, weight_decay=wd, decoupled=decoupled)
    ref_kw = dict(lr=0.01, betas=(0.8, 0.99), eps=1e-8, weight_decay=wd)
    ours, theirs = _run_pair(Adam, ref, ours_kw, ref_kw, steps=8)
    for pa, pb in zip(ours, theirs):
        torch.testing.assert_close(pa.detach(), pb.detach(), atol=1e-6, rtol=1e-5)


def test_adam_coupled_and_decoupled_decay_differ() -> None:
    kw = dict(lr=0.01, weight_decay=0.1)
    a, _ = _run_pair(Adam, torch.optim.Adam, dict(kw, decoupled=False), kw)
    b, _ = _run_pair(Adam, torch.optim.Adam, dict(kw, decoupled=True), kw)
    assert max(float((pa - pb).detach().abs().max()) for pa, pb in zip(a, b)) > 1e-4


def _lamb_reference(x, grads, lr, b1, b2, eps, wd):
    """Algorithm 2 of You et al. (2020) for one layer, written independently in plain tensor math."""
    m = torch.zeros_like(x)
    v = torch.zeros_like(x)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        r = m_hat / (torch.sqrt(v_hat) + eps)
        u = r + wd * x
        phi = torch.sqrt((x**2).sum())  # φ = identity on ||x||
        x = x - lr * phi / torch.sqrt((u**2).sum()) * u
    return x


@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_lamb_matches_published_rule(wd: float) -> None:
    g = torch.Generator().manual_seed(3)
    xs = [torch.randn(4, 6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64) + 2]
    grads = [[torch.randn(x.shape, generator=g, dtype=torch.float64) for _ in range(7)] for x in xs]
    params = [torch.nn.Parameter(x.clone()) for x in xs]
    opt = LAMB(params, lr=0.02, betas=(0.9, 0.999), eps=1e-6, weight_decay=wd)
    for step in range(7):
        for p, gs in zip(params, grads):
            p.grad = gs[step].clone()
        opt.step()
    for p, x, gs in zip(params, xs, grads):
        want = _lamb_reference(x, gs, 0.02, 0.9, 0.999, 1e-6, wd)
        torch.testing.assert_close(p.detach(), want, atol=1e-10, rtol=1e-9)


def test_lamb_step_size_is_lr_times_weight_norm() -> None:
    p = torch.tensor([3.0, 4.0])
    new, _, _ = lamb_step(p, torch.tensor([0.3, -2.0]), torch.zeros(2), torch.zeros(2), 1, lr=0.1)
    assert math.isclose(float(torch.linalg.vector_norm(new - p)), 0.5, rel_tol=1e-5)
    zero = torch.zeros(3)  # zero weights: trust ratio 1 (the usual convention), so the layer still moves
    new, _, _ = lamb_step(zero, torch.ones(3), torch.zeros(3), torch.zeros(3), 1, lr=0.1)
    assert float(new.abs().max()) > 0


def test_lamb_phi_bounds_clamp_the_weight_norm() -> None:
    p = torch.full((4,), 10.0)  # ||p|| = 20
    new, _, _ = lamb_step(p, torch.ones(4), torch.zeros(4), torch.zeros(4), 1, lr=0.1, phi_bounds=(0.0, 5.0))
    assert math.isclose(float(torch.linalg.vector_norm(new - p)), 0.5, rel_tol=1e-4)


def test_step_functions_leave_inputs_unchanged() -> None:
    p, g, m, v = torch.ones(3), torch.full((3,), 0.5), torch.full((3,), 0.1), torch.full((3,), 0.2)
    copies = [t.clone() for t in (p, g, m, v)]
    sgd_momentum_step(p, g, m, lr=0.1, momentum=0.9, nesterov=True)
    adam_step(p, g, m, v, 2, lr=0.1, weight_decay=0.1)
    lamb_step(p, g, m, v, 2, lr=0.1, weight_decay=0.1)
    for before, after in zip(copies, (p, g, m, v)):
        assert torch.equal(before, after)


def test_bad_input_gives_clear_errors() -> None:
    with pytest.raises(ValueError, match="lr must be"):
        Adam([torch.nn.Parameter(torch.zeros(1))], lr=-1)
    with pytest.raises(ValueError, match="betas"):
        LAMB([torch.nn.Parameter(torch.zeros(1))], betas=(0.9, 1.5))
    with pytest.raises(ValueError, match="nesterov"):
        SGDMomentum([torch.nn.Parameter(torch.zeros(1))], momentum=0.0, nesterov=True)
    with pytest.raises(ValueError, match="one shape"):
        adam_step(torch.zeros(3), torch.zeros(2), torch.zeros(3), torch.zeros(3), 1)
    with pytest.raises(ValueError, match="step must be"):
        adam_step(torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.zeros(3), 0)
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'"):
        make_optimizer("adamax", [torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def test_make_optimizer_builds_every_name_and_each_one_descends() -> None:
    for name in OPTIMIZER_NAMES:
        for scratch in (False, True):
            w = torch.nn.Parameter(torch.tensor([2.0, -1.0]))
            opt = make_optimizer(name, [w], lr=0.05, from_scratch=scratch)
            start = float((w**2).sum())
            for _ in range(20):
                opt.zero_grad()
                (w**2).sum().backward()
                opt.step()
            assert float((w**2).sum()) < start, name


def test_from_scratch_lamb_trains_a_real_model_through_the_trainer() -> None:
    from tutorlib.data import load_digits
    from tutorlib.models import MLP
    from tutorlib.train import Trainer

    torch.manual_seed(0)
    model = MLP(64, [32], 10)
    h = Trainer(model, LAMB(model.parameters(), lr=0.05, weight_decay=0.01), batch_size=32, progress=False,
                log=False).fit(load_digits("train", limit=256), load_digits("val", limit=128), epochs=3)
    assert h["train_loss"][-1] < 0.7 * h["train_loss"][0]
    assert h["val_accuracy"][-1] > 0.5


# --------------------------------------------------------------------------- schedules


def test_warmup_cosine_equals_transformers_schedule() -> None:
    from transformers import get_cosine_schedule_with_warmup

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.3)
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=7, num_training_steps=40)
    for step in range(40):
        assert math.isclose(opt.param_groups[0]["lr"], warmup_cosine(step, 40, 7, base_lr=0.3), abs_tol=1e-12)
        opt.step()
        sched.step()


def test_warmup_cosine_shape_and_errors() -> None:
    trace = [warmup_cosine(s, 100, 10, base_lr=1.0, min_lr=0.1) for s in range(101)]
    assert trace[0] == 0.0 and max(trace) == 1.0 and trace.index(1.0) == 10
    assert all(a >= b - 1e-12 for a, b in zip(trace[10:], trace[11:]))  # non-increasing after warmup
    assert math.isclose(trace[-1], 0.1)
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine(0, 10, 20)
    with pytest.raises(ValueError, match="min_lr"):
        warmup_cosine(0, 10, 2, base_lr=0.1, min_lr=0.2)


@pytest.mark.parametrize("name", ["constant", "step", "linear", "cosine", "one_cycle", "warmup_cosine"])
def test_every_schedule_runs_its_full_length(name: str) -> None:
    trace = lr_trace(name, total_steps=30, base_lr=0.1, warmup_steps=5)
    assert len(trace) == 30 and all(math.isfinite(x) and x >= 0 for x in trace)
    assert max(trace) <= 0.1 + 1e-9
    if name in ("linear", "cosine", "warmup_cosine"):
        assert trace[0] == 0.0 and math.isclose(max(trace), 0.1)


def test_scheduler_factory_drives_the_trainer_lr() -> None:
    from tutorlib.data import load_digits
    from tutorlib.models import MLP
    from tutorlib.train import Trainer

    model = MLP(64, [16], 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    t = Trainer(model, opt, scheduler=scheduler_factory("warmup_cosine", warmup=0.25), batch_size=32, progress=False,
                log=False)
    h = t.fit(load_digits("train", limit=128), epochs=2)  # 8 steps, 2 of warmup
    lrs = [s["lr"] for s in h.steps]  # the rate after each step = schedule at step + 1
    want = [warmup_cosine(i + 1, 8, 2, base_lr=0.2) for i in range(8)]
    assert all(math.isclose(a, b, abs_tol=1e-12) for a, b in zip(lrs, want))


def test_schedule_bad_input() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="unknown schedule"):
        make_scheduler("exponential", opt, 10)
    with pytest.raises(ValueError, match="unknown schedule"):
        scheduler_factory("triangle")
    with pytest.raises(TypeError, match="Optimizer"):
        make_scheduler("cosine", "adam", 10)  # type: ignore[arg-type]
