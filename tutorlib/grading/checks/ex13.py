"""Checks for lesson 13 (frontier techniques): sliding-window mask, top-k routing with the balancing loss, FGSM,
the equalized-odds gap, per-sample gradient clipping and FedAvg aggregation.

The references are :mod:`tutorlib.frontiers` (itself tested against ``scaled_dot_product_attention``,
per-sample loops and Opacus' accountant values); every input comes from the check's private generator.

>>> from tutorlib.frontiers import sliding_window_mask
>>> sliding_window_mask(3, 1).int().tolist()
[[1, 0, 0], [0, 1, 0], [0, 0, 1]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from tutorlib.frontiers import (clip_per_sample, equalized_odds_gap, fedavg, fgsm, load_balancing_loss,
                                sliding_window_mask, top_k_routing)

from ..compare import CheckFailed, describe, expect_close, expect_finite, expect_number, expect_tensor
from ..protocol import exercise

__all__: list[str] = []


_WINDOW_CASES = [(6, 2, True), (9, 3, True), (5, 1, True), (7, 3, False), (8, 20, True), (4, 2, False)]


@exercise("ex13_1", points=2, timeout=60)
class SlidingWindowCheck:
    """``sliding_window_mask(T, window, causal=True)`` → bool (T, T), True where query i may attend to key j."""

    names = ("sliding_window_mask",)
    reference = ("tutorlib.frontiers.sliding_window_mask",)
    hints = (
        "d = i - j for every (query i, key j) pair: torch.arange(T)[:, None] - torch.arange(T)[None, :].",
        "causal: (d >= 0) & (d < window); two-sided: d.abs() < window.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        extra = (int(torch.randint(3, 12, (1,), generator=gen)), int(torch.randint(1, 5, (1,), generator=gen)))
        return {"cases": _WINDOW_CASES + [(extra[0], extra[1], True), (extra[0], extra[1], False)]}

    def call(self, learner: Any, inputs: dict) -> list:
        fn = learner.function("sliding_window_mask")
        return [learner.call(fn, T, w, causal=causal, name="sliding_window_mask") for T, w, causal in inputs["cases"]]

    def compare(self, inputs: dict, outputs: list) -> str:
        for (T, w, causal), out in zip(inputs["cases"], outputs):
            call = f"sliding_window_mask({T}, {w}, causal={causal})"
            out = expect_tensor(out, f"the result of {call}", shape=(T, T))
            if out.dtype != torch.bool:
                raise CheckFailed(f"the result of {call} has dtype {out.dtype}, expected torch.bool: "
                                  "build it from comparisons (d >= 0) & (d < window), not from numbers")
            out = out.cpu()
            want = sliding_window_mask(T, w, causal)
            if not torch.equal(out, want):
                i, j = (out != want).nonzero()[0].tolist()
                hint = ""
                if causal and bool(out[i, j]) and j > i:
                    hint = ": a causal mask must never let a query see a later key (j > i)"
                elif bool(want[i, j]) and i == j:
                    hint = ": every query sees itself (the window counts the query)"
                elif abs(i - j) in (w - 1, w):
                    hint = f": query i sees keys i-{w - 1} … i (window={w} positions including itself); check < vs <="
                raise CheckFailed(f"{call}[{i}, {j}] is {bool(out[i, j])}, expected {bool(want[i, j])}{hint}")
        return "matches tutorlib.frontiers.sliding_window_mask, causal and two-sided"


@exercise("ex13_2", points=3, timeout=60)
class RoutingCheck:
    """``top_k_routing(logits, k)`` → (weights, indices, probs) and ``load_balancing_loss(probs, indices, n_experts)``."""

    names = ("top_k_routing", "load_balancing_loss")
    reference = ("tutorlib.frontiers.top_k_routing", "tutorlib.frontiers.load_balancing_loss")
    hints = (
        "probs = softmax(logits, -1); top_p, idx = probs.topk(k, dim=-1); weights = top_p / top_p.sum(-1, keepdim=True).",
        "f = bincount(indices.flatten(), minlength=E) / indices.numel(); loss = E * (f * probs.mean(0)).sum().",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        cases = [(N, E, k, torch.randn(N, E, generator=gen) * 2) for N, E, k in [(10, 4, 1), (12, 6, 2), (7, 3, 3)]]
        return {"cases": cases}

    def call(self, learner: Any, inputs: dict) -> dict:
        route, bal = learner.function("top_k_routing"), learner.function("load_balancing_loss")
        dev = learner.device
        routed, losses, with_grad = [], [], []
        for N, E, k, logits in inputs["cases"]:
            routed.append(learner.call(route, logits.to(dev), k, name="top_k_routing"))
            want_w, want_idx, want_p = top_k_routing(logits, k)  # the balancing loss is checked on the right routing
            losses.append(learner.call(bal, want_p.to(dev), want_idx.to(dev), E, name="load_balancing_loss"))
            p = want_p.clone().to(dev).requires_grad_(True)  # passed as it is: a copy would hide the gradient
            try:
                out = learner.call(bal, p, want_idx.clone().to(dev), E, name="load_balancing_loss", mutable=(0,))
                with_grad.append(bool(isinstance(out, torch.Tensor) and out.requires_grad))
            except CheckFailed as exc:
                with_grad.append(str(exc))
        uni = learner.call(bal, torch.full((8, 4), 0.25, device=dev), torch.arange(8, device=dev).remainder(4)[:, None], 4,
                           name="load_balancing_loss")
        return {"routed": routed, "losses": losses, "with_grad": with_grad, "uniform": uni}

    def compare(self, inputs: dict, outputs: dict) -> str:
        for (N, E, k, logits), out, aux, grad in zip(inputs["cases"], outputs["routed"], outputs["losses"],
                                                      outputs["with_grad"]):
            call = f"top_k_routing(logits of shape ({N}, {E}), k={k})"
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                raise CheckFailed(f"{call} returned {describe(out)}, expected a tuple (weights, indices, probs)")
            w, idx, probs = out
            want_w, want_idx, want_p = top_k_routing(logits, k)
            expect_tensor(probs, f"probs from {call}", shape=(N, E))
            expect_close(probs, want_p, f"probs from {call}", atol=1e-5, hint="probs = softmax(logits, dim=-1) over experts")
            expect_tensor(idx, f"indices from {call}", shape=(N, k))
            if idx.dtype not in (torch.int64, torch.int32):
                raise CheckFailed(f"indices from {call} have dtype {idx.dtype}, expected integer expert ids (topk's indices)")
            if not torch.equal(idx.cpu().long(), want_idx):
                raise CheckFailed(f"indices from {call} differ from the k largest probabilities (best first): got "
                                  f"{idx[0].tolist()} for token 0, expected {want_idx[0].tolist()}; use probs.topk(k, dim=-1)")
            expect_tensor(w, f"weights from {call}", shape=(N, k))
            hint = "renormalise the chosen probabilities so each token's k weights sum to 1"
            if (torch.allclose(w.double().cpu(), want_p.gather(1, want_idx).double(), atol=1e-6)
                    and not torch.allclose(w.double().cpu(), want_w.double(), atol=1e-5)):
                hint = "the weights are the raw softmax probabilities: divide them by their sum over the k chosen experts"
            expect_close(w, want_w, f"weights from {call}", atol=1e-5, hint=hint)
            lcall = f"load_balancing_loss(probs, indices, n_experts={E}) with k={k}"
            aux = expect_tensor(aux, f"the result of {lcall}", shape=())
            expect_finite(aux, f"the result of {lcall}")
            want = load_balancing_loss(want_p, want_idx, E)
            hint = "n_experts * sum_i f_i * P_i with f_i = share of the N*k assignments to expert i, P_i = mean prob of expert i"
            counts = torch.bincount(want_idx.flatten(), minlength=E).double()
            if abs(float(aux) - float(E * ((counts / N) * want_p.double().mean(0)).sum())) < 1e-5 and k > 1:
                hint = "divide the counts by N*k (all assignments), not by N"
            expect_close(aux, want, f"the result of {lcall}", atol=1e-5, hint=hint)
            if isinstance(grad, str):
                raise CheckFailed(f"{lcall} fails when probs requires grad: {grad}")
            if not grad:
                raise CheckFailed(f"{lcall} does not depend on probs through autograd: P_i = probs.mean(0) must keep its "
                                  "gradient (only f_i is a constant)")
        expect_close(expect_tensor(outputs["uniform"], "load_balancing_loss for perfectly uniform routing"), torch.tensor(1.0),
                     "load_balancing_loss for perfectly uniform routing", atol=1e-5)
        return "routing and the Switch balancing loss match tutorlib.frontiers for k = 1, 2, 3"


class _TinyNet(nn.Module):
    def __init__(self, gen: torch.Generator) -> None:
        super().__init__()
        self.lin = nn.Linear(16, 3)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(3, 16, generator=gen))
            self.lin.bias.copy_(torch.randn(3, generator=gen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.tanh(x.flatten(1) * 2))


def _tiny_net(state: dict[str, torch.Tensor]) -> nn.Module:
    with torch.random.fork_rng():
        net = _TinyNet(torch.Generator())
    net.load_state_dict(state)
    return net.eval()


@exercise("ex13_3", points=2, timeout=60)
class FGSMCheck:
    """``fgsm(model, x, y, eps)`` → ``(x + eps * sign(grad_x loss)).clamp(0, 1)``, detached, input untouched, and
    working when called inside ``torch.no_grad()`` as the lesson does."""

    names = ("fgsm",)
    reference = ("tutorlib.frontiers.fgsm", "tutorlib.frontiers.adversarial.fgsm", "tutorlib.frontiers.adversarial.pgd",
                 "tutorlib.frontiers.pgd")
    hints = (
        "x_adv = x.detach().clone().requires_grad_(True); loss = F.cross_entropy(model(x_adv), y); "
        "(grad,) = torch.autograd.grad(loss, x_adv).",
        "return (x + eps * grad.sign()).clamp(0, 1).detach(), and wrap the gradient part in `with torch.enable_grad():` "
        "so it also works under torch.no_grad().",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        with torch.random.fork_rng():
            state = dict(_TinyNet(gen).state_dict())
        return {"state": state, "x": torch.rand(6, 1, 4, 4, generator=gen), "y": torch.randint(3, (6,), generator=gen),
                "eps": [0.1, 0.3]}

    def call(self, learner: Any, inputs: dict) -> dict:
        fn = learner.function("fgsm")
        dev = learner.device
        model = _tiny_net(inputs["state"]).to(dev)
        x, y = inputs["x"].to(dev), inputs["y"].to(dev)
        outs = [learner.call(fn, model, x, y, eps, name="fgsm") for eps in inputs["eps"]]
        try:
            with torch.no_grad():
                under = {"out": learner.call(fn, model, x, y, inputs["eps"][0], name="fgsm")}
        except CheckFailed as exc:
            under = {"error": str(exc)}
        return {"outs": outs, "no_grad": under}

    def compare(self, inputs: dict, outputs: dict) -> str:
        model, x, y = _tiny_net(inputs["state"]), inputs["x"], inputs["y"]
        for eps, out in zip(inputs["eps"], outputs["outs"]):
            call = f"fgsm(model, x, y, eps={eps})"
            out = expect_tensor(out, f"the result of {call}", shape=x.shape, dtype=x.dtype)
            expect_finite(out, f"the result of {call}")
            if out.requires_grad:
                raise CheckFailed(f"the result of {call} still requires grad: return x_adv.detach()")
            out = out.cpu()
            want = fgsm(model, x, y, eps)
            hint = "x_adv = (x + eps * grad.sign()).clamp(0, 1) with grad the gradient of the cross-entropy w.r.t. x"
            if torch.allclose(out, (x - eps * (want - x).sign()).clamp(0, 1), atol=1e-6):
                hint = "you stepped the wrong way: FGSM *increases* the loss, x + eps * sign(grad)"
            elif (out - x).abs().max() > eps + 1e-6:
                hint = f"the perturbation must stay within eps={eps} per pixel"
            elif (out < 0).any() or (out > 1).any():
                hint = "clamp the result to the valid pixel range [0, 1]"
            expect_close(out, want, f"the result of {call}", atol=1e-5, hint=hint)
        # The lesson calls fgsm inside `with torch.no_grad():` (evaluating the attacked model): it must still work there.
        eps = inputs["eps"][0]
        call = f"fgsm(model, x, y, eps={eps}) inside `with torch.no_grad():`"
        enable = "turn gradients back on inside fgsm with `with torch.enable_grad():` around the loss and torch.autograd.grad"
        under = outputs["no_grad"]
        if "error" in under:
            raise CheckFailed(f"{call} fails ({under['error']}): the lesson attacks the model under no_grad, so {enable}")
        out = expect_tensor(under["out"], f"the result of {call}", shape=x.shape, dtype=x.dtype)
        expect_close(out, fgsm(model, x, y, eps), f"the result of {call}", atol=1e-5, hint=enable)
        return "matches tutorlib.frontiers.fgsm, also under torch.no_grad()"


_GROUP_NAMES = ["airline", "book", "movie", "hotel"]


@exercise("ex13_4", points=2, timeout=60)
class EqualizedOddsCheck:
    """``equalized_odds_gap(y_true, y_pred, groups)`` → float: max(TPR gap, FPR gap) across groups."""

    names = ("equalized_odds_gap",)
    reference = ("tutorlib.frontiers.equalized_odds_gap",)
    hints = (
        "per group g: TPR = y_pred[(groups == g) & (y_true == 1)].mean(), FPR = the same with y_true == 0.",
        "return float(max(max(TPR) - min(TPR), max(FPR) - min(FPR))), skipping a rate whose group has no examples.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        cases = []
        for n, n_groups in [(40, 2), (60, 3), (80, 4)]:
            cases.append({"y": torch.randint(2, (n,), generator=gen), "p": torch.randint(2, (n,), generator=gen),
                          "g": [_GROUP_NAMES[i] for i in torch.randint(n_groups, (n,), generator=gen).tolist()]})
        # Two groups whose true-positive rates agree but false-positive rates differ, and the other way round:
        # a gap of only one of the rates fails on one of them.
        flip = int(torch.randint(2, (1,), generator=gen))
        y = torch.tensor([1, 1, 0, 0, 1, 1, 0, 0])
        for p in ([1, 1, 0, 0, 1, 1, 1, 0], [1, 0, 0, 0, 1, 1, 0, 0]):
            cases.append({"y": y, "p": torch.tensor(p), "g": [_GROUP_NAMES[(i // 4 + flip) % 2] for i in range(8)]})
        return {"cases": cases}

    def call(self, learner: Any, inputs: dict) -> list:
        fn = learner.function("equalized_odds_gap")
        return [learner.call(fn, c["y"].numpy(), c["p"].numpy(), np.array(c["g"]), name="equalized_odds_gap")
                for c in inputs["cases"]]

    def compare(self, inputs: dict, outputs: list) -> str:
        for c, out in zip(inputs["cases"], outputs):
            y, p, g = c["y"].numpy(), c["p"].numpy(), np.array(c["g"])
            call = f"equalized_odds_gap(y_true, y_pred, groups) with {len(set(c['g']))} groups"
            out = expect_number(out, f"the result of {call}")
            want = equalized_odds_gap(y, p, g)
            tpr = [p[(g == k) & (y == 1)].mean() for k in set(g)]
            fpr = [p[(g == k) & (y == 0)].mean() for k in set(g)]
            hint = "the gap is max(max TPR - min TPR, max FPR - min FPR) over groups"
            if abs(out - (max(tpr) - min(tpr))) < 1e-9 and abs(out - want) > 1e-9:
                hint = "that is the TPR gap only: equalized odds also compares false-positive rates P(ŷ=1 | y=0)"
            elif abs(out - (max(fpr) - min(fpr))) < 1e-9 and abs(out - want) > 1e-9:
                hint = "that is the FPR gap only: equalized odds also compares true-positive rates P(ŷ=1 | y=1)"
            expect_close(torch.tensor(out), torch.tensor(want), f"the result of {call}", atol=1e-6, hint=hint)
        return "matches tutorlib.frontiers.equalized_odds_gap"


@exercise("ex13_5", points=2, timeout=60)
class ClipPerSampleCheck:
    """``clip_per_sample(grads, max_norm)``: each example's gradient (over all parameters) scaled to norm ≤ max_norm."""

    names = ("clip_per_sample",)
    reference = ("tutorlib.frontiers.clip_per_sample",)
    hints = (
        "norm_i = sqrt(sum over ALL parameters of grads[name][i] ** 2): flatten each to (B, -1) and add the squares.",
        "factor_i = min(1, max_norm / (norm_i + 1e-6)); multiply every grads[name][i] by factor_i.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        scales = torch.tensor([0.05, 0.3, 1.0, 3.0, 10.0, 0.0])
        grads = {"layer.weight": torch.randn(6, 3, 4, generator=gen) * scales.view(-1, 1, 1),
                 "layer.bias": torch.randn(6, 3, generator=gen) * scales.view(-1, 1)}
        return {"grads": grads, "norms": [1.0, 0.5]}

    def call(self, learner: Any, inputs: dict) -> list:
        fn = learner.function("clip_per_sample")
        grads = {k: v.to(learner.device) for k, v in inputs["grads"].items()}
        out = [learner.call(fn, grads, C, name="clip_per_sample") for C in inputs["norms"]]
        return [o if not isinstance(o, dict) or all(isinstance(k, str) for k in o) else describe(o) for o in out]

    def compare(self, inputs: dict, outputs: list) -> str:
        grads = inputs["grads"]
        for C, out in zip(inputs["norms"], outputs):
            call = f"clip_per_sample(grads, max_norm={C})"
            if not isinstance(out, dict) or set(out) != set(grads):
                raise CheckFailed(f"{call} returned {describe(out)}, expected a dict with the same keys {sorted(grads)}")
            want = clip_per_sample(grads, C)
            per_param = {n: g * (C / (g.flatten(1).norm(dim=1) + 1e-6)).clamp(max=1).view(-1, *([1] * (g.dim() - 1)))
                         for n, g in grads.items()}
            for name in grads:
                got = expect_tensor(out[name], f"{call}[{name!r}]", shape=grads[name].shape)
                expect_finite(got, f"{call}[{name!r}]")
                hint = "factor_i = min(1, max_norm / (norm_i + 1e-6)) with norm_i over ALL parameters of example i"
                if all(isinstance(out[n], torch.Tensor) and out[n].shape == per_param[n].shape
                       and torch.allclose(out[n].double().cpu(), per_param[n].double(), atol=1e-6) for n in grads):
                    hint = "you clipped each parameter separately: the norm of example i is taken over all its parameters together"
                expect_close(got, want[name], f"{call}[{name!r}]", atol=1e-5, hint=hint)
        return "matches tutorlib.frontiers.clip_per_sample (joint per-example norm, small gradients untouched)"


@exercise("ex13_6", points=2, timeout=60)
class FedAvgCheck:
    """``fedavg(states, weights)`` → the weighted average state_dict (weights = client sizes)."""

    names = ("fedavg",)
    reference = ("tutorlib.frontiers.fedavg",)
    hints = (
        "the weight of client c is n_c / sum(n): its share of all the examples.",
        "return {name: sum(w_c * states[c][name] for each client c) for name in states[0]}.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        states = [{"fc.weight": torch.randn(3, 2, generator=gen), "fc.bias": torch.randn(3, generator=gen)} for _ in range(4)]
        sizes = [int(v) for v in torch.randint(5, 60, (4,), generator=gen)]
        return {"states": states, "weights": [sizes, [1, 1, 1, 1]]}

    def call(self, learner: Any, inputs: dict) -> list:
        fn = learner.function("fedavg")
        states = [{k: v.to(learner.device) for k, v in st.items()} for st in inputs["states"]]
        out = [learner.call(fn, states, list(w), name="fedavg") for w in inputs["weights"]]
        return [o if not isinstance(o, dict) or all(isinstance(k, str) for k in o) else describe(o) for o in out]

    def compare(self, inputs: dict, outputs: list) -> str:
        states = inputs["states"]
        for w, out in zip(inputs["weights"], outputs):
            call = f"fedavg(states, weights={w})"
            if not isinstance(out, dict) or set(out) != set(states[0]):
                raise CheckFailed(f"{call} returned {describe(out)}, expected a dict with keys {sorted(states[0])}")
            want = fedavg(states, w)
            for name in want:
                got = expect_tensor(out[name], f"{call}[{name!r}]", shape=want[name].shape)
                hint = "sum_c (n_c / sum n) * state_c[name]"
                plain = sum(s[name] for s in states) / len(states)
                if len(set(w)) > 1 and torch.allclose(got.double().cpu(), plain.double(), atol=1e-6):
                    hint = "that is the plain mean: weight each client by its share of the examples, n_c / sum(n)"
                expect_close(got, want[name], f"{call}[{name!r}]", atol=1e-5, hint=hint)
        return "matches tutorlib.frontiers.fedavg"


def _plain(x: Any) -> Any:
    """A learner value as it may cross to the grader: numbers, tuples/lists/dicts of them; other objects as a description."""
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()} if all(isinstance(k, (int, float, str)) for k in x) else describe(x)
    if x is None or isinstance(x, (bool, int, float, str, np.generic, torch.Tensor)):
        return x  # numbers cross as they are; a NumPy scalar or a tensor gets the grader's own message
    return describe(x)


@exercise("ex13_7", points=2, timeout=60)
class DPExperimentCheck:
    """``dp_runs = {sigma: (epsilon, accuracy)}`` for σ in 0.5, 1, 2, ``dp_models`` with the trained models, and
    ``sigma_for_budget`` (smallest σ with ε ≤ 2). The grader re-derives each ε and re-measures each accuracy from
    the model's own weights on the digits test set, so a made-up table fails."""

    names = ("dp_runs", "dp_models", "q_dp", "dp_steps", "sigma_for_budget")
    hints = (
        "one fresh MLP(64, [64], 10) per σ, trained with Trainer(..., step_fn=dp_sgd_step_fn(x_dp, y_dp, q_dp, 1.0, sigma, "
        "lr=0.5), manual_optimization=True, batch_size=1) on TensorDataset(torch.arange(dp_steps)); keep it in dp_models[sigma].",
        "ε is dp_epsilon(q_dp, sigma, dp_steps); the accuracy is measured with torch.no_grad() on x_dp_test, y_dp_test.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Any, inputs: dict) -> dict:
        runs = learner.get("dp_runs")
        models = learner.get("dp_models")
        out_models: Any = describe(models)
        if isinstance(models, dict):
            out_models = {float(k) if isinstance(k, (int, float)) else str(k):
                          dict(m.state_dict()) if isinstance(m, nn.Module) else describe(m) for k, m in models.items()}
        return {"runs": _plain(runs), "models": out_models, "q": _plain(learner.get("q_dp")),
                "steps": _plain(learner.get("dp_steps")), "chosen": _plain(learner.get("sigma_for_budget"))}

    def compare(self, inputs: dict, outputs: dict) -> str:
        from tutorlib.data import load_digits
        from tutorlib.frontiers import dp_epsilon
        from tutorlib.models import MLP

        runs = outputs["runs"]
        q = expect_number(outputs["q"], "`q_dp`")
        steps = expect_number(outputs["steps"], "`dp_steps`", int)
        if not isinstance(runs, dict) or sorted(float(k) for k in runs) != [0.5, 1.0, 2.0]:
            keys = sorted(runs) if isinstance(runs, dict) else runs
            raise CheckFailed(f"`dp_runs` should be a dict with keys 0.5, 1.0 and 2.0 (the noise multipliers), got {keys}")
        for sigma, val in runs.items():
            if not isinstance(val, (tuple, list)) or len(val) != 2:
                raise CheckFailed(f"dp_runs[{sigma}] is {val}, expected a tuple (epsilon, test_accuracy)")
            eps = expect_number(val[0], f"the epsilon in dp_runs[{sigma}]")
            acc = expect_number(val[1], f"the accuracy in dp_runs[{sigma}]")
            # integer orders are fast; the default orders add fractional ones, which can only lower epsilon (by ~10 %)
            want = dp_epsilon(q, float(sigma), steps, orders=range(2, 64))
            if not 0.8 * want - 1e-6 <= eps <= 1.03 * want + 1e-6:
                raise CheckFailed(f"dp_runs[{sigma}] reports epsilon {eps:.4g}, but dp_epsilon(q_dp, {sigma}, dp_steps) gives "
                                  f"{want:.4g}: compute it with the same q_dp and dp_steps you trained with")
            if not 0.0 <= acc <= 1.0:
                raise CheckFailed(f"the accuracy in dp_runs[{sigma}] is {acc}, expected a fraction in [0, 1]")
        # The accuracies must come from the run: re-measure each model's own weights on the digits test set.
        models = outputs["models"]
        if not isinstance(models, dict) or sorted(float(k) for k in models if isinstance(k, (int, float))) != [0.5, 1.0, 2.0]:
            raise CheckFailed(f"`dp_models` should be a dict {{sigma: trained model}} with keys 0.5, 1.0 and 2.0, got "
                              f"{sorted(models) if isinstance(models, dict) else models}: keep each σ's trained MLP in it")
        x_test, y_test = load_digits("test", flat=True).tensors
        for sigma, val in runs.items():
            state = models[float(sigma)]
            if not isinstance(state, dict):
                raise CheckFailed(f"dp_models[{sigma}] is {state}, expected the MLP(64, [64], 10) you trained with σ = {sigma}")
            net = MLP(64, [64], 10)
            try:
                net.load_state_dict(state)
            except (RuntimeError, KeyError) as exc:
                first = str(exc).strip().splitlines()[0][:200]
                raise CheckFailed(f"dp_models[{sigma}] is not an MLP(64, [64], 10) ({first})") from None
            with torch.no_grad():
                measured = float((net(x_test).argmax(1) == y_test).float().mean())
            if abs(float(val[1]) - measured) > 1e-4:
                raise CheckFailed(f"dp_runs[{sigma}] reports test accuracy {float(val[1]):.4f}, but dp_models[{sigma}] measures "
                                  f"{measured:.4f} on the digits test set: report the accuracy of the model you trained with "
                                  "that σ, measured on load_digits('test', flat=True)")
        accs = [runs[k][1] for k in sorted(runs, key=float)]
        if accs[-1] > accs[0] + 0.05:
            raise CheckFailed(f"with more noise the accuracy went up ({accs[0]:.3f} at σ=0.5, {accs[-1]:.3f} at σ=2): did each "
                              "run use its own sigma and a fresh model?")
        chosen = expect_number(outputs["chosen"], "`sigma_for_budget`")
        ok = [float(k) for k, (e, _) in runs.items() if e <= 2]
        if not ok:
            raise CheckFailed("none of your runs has epsilon <= 2: check dp_steps and q_dp (they are given in the cell)")
        if abs(chosen - min(ok)) > 1e-9:
            raise CheckFailed(f"`sigma_for_budget` is {chosen}, but the smallest σ in your table with ε ≤ 2 is {min(ok)}: "
                              "less noise means more accuracy, so take the smallest σ that still meets the budget")
        return f"epsilon and accuracy (re-measured from your models) for σ = 0.5, 1, 2; σ = {chosen} is the best choice for ε ≤ 2"
