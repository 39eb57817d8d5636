"""Lesson 13's checks pass the reference answers, reject typical mistakes with a useful message, and see untouched stubs."""

import numpy as np
import torch

from tutorlib.frontiers import (clip_per_sample, equalized_odds_gap, fedavg, fgsm, load_balancing_loss,
                                sliding_window_mask)
from tutorlib.grading.registry import CheckContext, get_exercise


def run(ex_id, **ns):
    from tutorlib.grading.compare import CheckFailed, NotAttempted

    ctx = CheckContext(ns, torch.device("cpu"), 0)
    try:
        return "pass", get_exercise(ex_id).func(ctx)
    except CheckFailed as e:
        return "fail", str(e)
    except NotAttempted as e:
        return "not_attempted", str(e)


def my_fgsm(m, x, y, eps):  # the learner's own FGSM (the library's is the reference and may not be used)
    xa = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(m(xa), y), xa)
    return (x.detach() + eps * g.sign()).clamp(0, 1).detach()


# The learner's own answers (the solutions'): the library's functions are the references and may not be used.
def my_mask(T, window, causal=True):
    i = torch.arange(T)
    d = i[:, None] - i[None, :]
    return (d >= 0) & (d < window) if causal else d.abs() < window


def my_route(logits, k):
    probs = torch.softmax(logits, dim=-1)
    top_p, idx = probs.topk(k, dim=-1)
    return top_p / top_p.sum(-1, keepdim=True), idx, probs


def my_balance(probs, indices, n_experts):
    counts = torch.bincount(indices.flatten(), minlength=n_experts).to(probs.dtype)
    return n_experts * (counts / indices.numel() * probs.mean(0)).sum()


def my_eo_gap(y_true, y_pred, groups):
    tprs, fprs = [], []
    for g in np.unique(groups):
        pos, neg = (groups == g) & (y_true == 1), (groups == g) & (y_true == 0)
        if pos.any():
            tprs.append(y_pred[pos].mean())
        if neg.any():
            fprs.append(y_pred[neg].mean())
    gap = lambda v: max(v) - min(v) if len(v) > 1 else 0.0  # noqa: E731
    return float(max(gap(tprs), gap(fprs)))


def my_clip(grads, max_norm):
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads.values()))
    factor = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    return {n: g * factor.view(-1, *([1] * (g.dim() - 1))) for n, g in grads.items()}


def my_fedavg(states, weights):
    total = sum(weights)
    return {k: sum(w / total * s[k] for s, w in zip(states, weights)) for k in states[0]}


def stub(*a, **k):
    raise NotImplementedError("write your answer here")


def test_references_pass():
    assert run("ex13_1", sliding_window_mask=my_mask)[0] == "pass"
    assert run("ex13_2", top_k_routing=my_route, load_balancing_loss=my_balance)[0] == "pass"
    assert run("ex13_3", fgsm=my_fgsm)[0] == "pass"
    assert run("ex13_4", equalized_odds_gap=my_eo_gap)[0] == "pass"
    assert run("ex13_5", clip_per_sample=my_clip)[0] == "pass"
    assert run("ex13_6", fedavg=my_fedavg)[0] == "pass"


def test_the_librarys_own_implementation_fails():
    for ex_id, answers in [("ex13_1", {"sliding_window_mask": sliding_window_mask}),
                           ("ex13_2", {"top_k_routing": my_route, "load_balancing_loss": load_balancing_loss}),
                           ("ex13_3", {"fgsm": lambda m, x, y, eps: fgsm(m, x, y, eps)}),
                           ("ex13_4", {"equalized_odds_gap": equalized_odds_gap}),
                           ("ex13_5", {"clip_per_sample": lambda g, c: clip_per_sample(g, c)}),
                           ("ex13_6", {"fedavg": fedavg})]:
        status, msg = run(ex_id, **answers)
        assert status == "fail" and "library's own implementation `tutorlib.frontiers." in msg, (ex_id, msg)


def test_stubs_are_not_attempted():
    for ex_id, names in [("ex13_1", ["sliding_window_mask"]), ("ex13_2", ["top_k_routing", "load_balancing_loss"]),
                         ("ex13_3", ["fgsm"]), ("ex13_4", ["equalized_odds_gap"]), ("ex13_5", ["clip_per_sample"]),
                         ("ex13_6", ["fedavg"])]:
        assert run(ex_id, **{n: stub for n in names})[0] == "not_attempted", ex_id


def test_typical_mistakes_get_specific_hints():
    def off_by_one(T, window, causal=True):
        i = torch.arange(T)
        d = i[:, None] - i[None, :]
        return (d >= 0) & (d <= window)
    status, msg = run("ex13_1", sliding_window_mask=off_by_one)
    assert status == "fail" and "< vs <=" in msg

    def raw_weights(logits, k):
        p = logits.softmax(-1)
        top, idx = p.topk(k)
        return top, idx, p
    status, msg = run("ex13_2", top_k_routing=raw_weights, load_balancing_loss=my_balance)
    assert status == "fail" and "divide them by their sum" in msg

    def detached_balance(probs, idx, E):
        return my_balance(probs.detach(), idx, E)
    status, msg = run("ex13_2", top_k_routing=my_route, load_balancing_loss=detached_balance)
    assert status == "fail" and "gradient" in msg

    def wrong_way(m, x, y, eps):
        xa = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(m(xa), y), xa)
        return (x - eps * g.sign()).clamp(0, 1)
    status, msg = run("ex13_3", fgsm=wrong_way)
    assert status == "fail" and "wrong way" in msg

    def needs_grad_mode(m, x, y, eps):  # right, but fails when called under torch.no_grad() (issue 24)
        xa = x.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(m(xa), y), xa)
        return (x + eps * g.sign()).clamp(0, 1).detach()
    status, msg = run("ex13_3", fgsm=needs_grad_mode)
    assert status == "fail" and "torch.no_grad()" in msg and "torch.enable_grad()" in msg

    def tpr_only(y, p, g):
        return float(max(p[(g == k) & (y == 1)].mean() for k in set(g)) - min(p[(g == k) & (y == 1)].mean() for k in set(g)))
    status, msg = run("ex13_4", equalized_odds_gap=tpr_only)
    assert status == "fail" and "false-positive" in msg

    def per_param(grads, C):
        return {n: g * (C / (g.flatten(1).norm(dim=1) + 1e-6)).clamp(max=1).view(-1, *([1] * (g.dim() - 1)))
                for n, g in grads.items()}
    status, msg = run("ex13_5", clip_per_sample=per_param)
    assert status == "fail" and "all its parameters together" in msg

    status, msg = run("ex13_6", fedavg=lambda states, w: {k: sum(s[k] for s in states) / len(states) for k in states[0]})
    assert status == "fail" and "plain mean" in msg


def test_checks_leave_the_global_rng_alone():
    torch.manual_seed(123)
    np.random.seed(5)
    before_t, before_n = torch.get_rng_state(), np.random.get_state()[1].copy()
    run("ex13_3", fgsm=my_fgsm)
    run("ex13_4", equalized_odds_gap=my_eo_gap)
    assert torch.equal(torch.get_rng_state(), before_t) and (np.random.get_state()[1] == before_n).all()


def _dp_run(steps=20):
    """The experiment as the exercise asks for it, small: one DP-SGD-trained MLP per σ, measured on the test digits."""
    from torch.utils.data import TensorDataset

    from tutorlib.data import load_digits
    from tutorlib.frontiers import dp_epsilon, dp_sgd_step_fn
    from tutorlib.models import MLP
    from tutorlib.train import Trainer

    x, y = load_digits("train", flat=True).tensors
    xt, yt = load_digits("test", flat=True).tensors
    q = 32 / len(x)
    runs, models = {}, {}
    with torch.random.fork_rng():
        for sigma in [0.5, 1.0, 2.0]:
            torch.manual_seed(0)
            net = MLP(64, [64], 10)
            Trainer(net, step_fn=dp_sgd_step_fn(x, y, q, 1.0, sigma, lr=0.5), manual_optimization=True, batch_size=1,
                    metrics=(), progress=False, log=False).fit(TensorDataset(torch.arange(steps)))
            with torch.no_grad():
                acc = float((net(xt).argmax(1) == yt).float().mean())
            runs[sigma], models[sigma] = (dp_epsilon(q, sigma, steps), acc), net
    return runs, models, q, steps


def test_dp_experiment_check():
    runs, models, q, steps = _dp_run()
    ok = [s for s, (e, _) in runs.items() if e <= 2]
    best = min(ok)
    right = dict(dp_runs=runs, dp_models=models, q_dp=q, dp_steps=steps, sigma_for_budget=best)
    assert run("ex13_7", **right)[0] == "pass", run("ex13_7", **right)
    status, msg = run("ex13_7", **dict(right, sigma_for_budget=2.0 if best != 2.0 else 0.5))
    assert status == "fail" and "smallest" in msg
    wrong = {**runs, 1.0: (runs[1.0][0] * 2, runs[1.0][1])}
    status, msg = run("ex13_7", **dict(right, dp_runs=wrong))
    assert status == "fail" and "dp_epsilon" in msg


def test_made_up_dp_accuracies_fail():
    # Issue 22: only range and monotonicity were checked, so a made-up table passed. The grader now re-measures
    # each accuracy from the model's own weights.
    runs, models, q, steps = _dp_run()
    best = min(s for s, (e, _) in runs.items() if e <= 2)
    made_up = {s: (e, a) for (s, (e, _)), a in zip(runs.items(), [0.95, 0.9, 0.8])}
    status, msg = run("ex13_7", dp_runs=made_up, dp_models=models, q_dp=q, dp_steps=steps, sigma_for_budget=best)
    assert status == "fail" and "measures" in msg and "test set" in msg
    status, msg = run("ex13_7", dp_runs=runs, q_dp=q, dp_steps=steps, sigma_for_budget=best, dp_models={})
    assert status == "fail" and "`dp_models`" in msg
    swapped = {0.5: models[2.0], 1.0: models[1.0], 2.0: models[0.5]}
    if abs(runs[0.5][1] - runs[2.0][1]) > 1e-4:
        status, msg = run("ex13_7", dp_runs=runs, dp_models=swapped, q_dp=q, dp_steps=steps, sigma_for_budget=best)
        assert status == "fail" and "measures" in msg
