"""Checks for lesson 09 (explainability): Shapley values, LIME's kernel and fit, integrated gradients,
the deletion curve, attention rollout, reading the LIME-stability plot, and the disagreement experiment.

The references are the library's own implementations in :mod:`tutorlib.explain`; inputs come from
each check's private generator, so the learner's random state is never touched.

>>> import numpy as np
>>> reference_shapley(lambda X: X[:, 0] * X[:, 1], np.array([2.0, 3.0]), np.zeros(2)).tolist()
[3.0, 3.0]
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..compare import CheckFailed, call_safely, expect_close, expect_number
from ..registry import CheckContext, register

__all__ = ["reference_shapley", "reference_deletion_curve", "reference_curve_auc"]


# --------------------------------------------------------------------------- reference answers


def reference_shapley(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Exact Shapley values against one baseline row (this is :func:`tutorlib.explain.exact_shapley`).

    >>> reference_shapley(lambda X: X.sum(1), np.array([1.0, 2.0]), np.zeros(2)).tolist()
    [1.0, 2.0]
    """
    from tutorlib.explain.shapley import exact_shapley

    return exact_shapley(f, x, baseline)


def reference_deletion_curve(prob_fn: Callable[[list[list[int]]], np.ndarray], ids: list[int],
                             order: list[int]) -> np.ndarray:
    """p(target) after deleting ``order[:k]``, k = 0..n (this is :func:`tutorlib.explain.deletion_curve_from_fn`).

    >>> reference_deletion_curve(lambda s: np.array([len(x) / 2 for x in s]), [7, 8], [1, 0]).tolist()
    [1.0, 0.5, 0.0]
    """
    from tutorlib.explain.faithfulness import deletion_curve_from_fn

    return deletion_curve_from_fn(prob_fn, ids, order).probs


def reference_curve_auc(probs: np.ndarray) -> float:
    """Trapezoid area under a curve sampled at x = k/n (this is :func:`tutorlib.explain.deletion_auc`).

    >>> reference_curve_auc(np.array([1.0, 0.0]))
    0.5
    """
    from tutorlib.explain.faithfulness import deletion_auc

    return deletion_auc(probs)


def _as_array(value: Any, what: str, shape: tuple[int, ...]) -> np.ndarray:
    if value is None:
        raise CheckFailed(f"{what} is None: did you forget a `return` statement?")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what} is a {type(value).__name__}, expected a NumPy array of numbers") from None
    if arr.shape != shape:
        raise CheckFailed(f"{what} has shape {arr.shape}, expected {shape}")
    if not np.all(np.isfinite(arr)):
        raise CheckFailed(f"{what} contains NaN or Inf: {arr.tolist()}")
    return arr


def _np_gen(ctx: CheckContext) -> np.random.Generator:
    return np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=ctx.generator)))


# --------------------------------------------------------------------------- ex09_1 exact Shapley values


@register("ex09_1", points=2, timeout=60)
def check_shapley(ctx: CheckContext) -> None:
    """``shapley_values(f, x, baseline)``: exact Shapley values for small functions, against one baseline row."""
    shapley_values = ctx.function("shapley_values")
    rng = _np_gen(ctx)
    w = rng.normal(size=4)

    def interaction(X: np.ndarray) -> np.ndarray:
        return w[0] * X[:, 0] + X[:, 1] * X[:, 2] - 0.5 * X[:, 3] ** 2 + X[:, 0] * X[:, 3]

    def three(X: np.ndarray) -> np.ndarray:
        return np.maximum(X[:, 0], X[:, 1]) + 2 * X[:, 2]

    cases = [("a 4-feature function with interactions", interaction, rng.normal(size=4), rng.normal(size=4)),
             ("f = max(x0, x1) + 2·x2", three, rng.normal(size=3), np.zeros(3))]
    for label, f, x, base in cases:
        got = call_safely(shapley_values, f, x.copy(), base.copy(), name="shapley_values")
        d = len(x)
        got = _as_array(got, f"shapley_values(f, x, baseline) for {label}", (d,))
        want = reference_shapley(f, x, base)
        gap = float(f(x[None])[0] - f(base[None])[0])
        hint = ""
        loo = np.array([f(x[None])[0] - f(np.where(np.arange(d) == i, base, x)[None])[0] for i in range(d)])
        if np.allclose(got, loo, atol=1e-6) and not np.allclose(loo, want, atol=1e-6):
            hint = ("these are leave-one-out differences f(x) − f(x without i); Shapley values average the "
                    "marginal contribution of i over all coalitions S, weighted by |S|!(d−|S|−1)!/d!")
        elif abs(got.sum() - gap) > 1e-6:
            hint = (f"the values add up to {got.sum():.4g} but must add up to f(x) − f(baseline) = {gap:.4g} "
                    "(efficiency): check the weights |S|!(d−|S|−1)!/d! and that you loop over every S without i")
        expect_close(got, want, f"shapley_values(f, x, baseline) for {label}", atol=1e-6, rtol=1e-6, hint=hint)


# --------------------------------------------------------------------------- ex09_2 LIME kernel and weighted fit


@register("ex09_2", points=2, timeout=60)
def check_lime_parts(ctx: CheckContext) -> None:
    """``lime_kernel(distances, kernel_width)`` and ``fit_local_surrogate(Z, y, weights, alpha)`` match LIME's."""
    from tutorlib.explain.surrogate import fit_local_surrogate as ref_fit
    from tutorlib.explain.surrogate import lime_kernel as ref_kernel

    lime_kernel = ctx.function("lime_kernel")
    fit = ctx.function("fit_local_surrogate")
    rng = _np_gen(ctx)
    d = rng.uniform(0, 80, size=9)
    for width in (25.0, 7.5):
        got = _as_array(call_safely(lime_kernel, d.copy(), width, name="lime_kernel"),
                        f"lime_kernel(distances, {width})", d.shape)
        want = ref_kernel(d, width)
        hint = ""
        if np.allclose(got, np.exp(-d ** 2 / width ** 2)):
            hint = "LIME takes the square root: sqrt(exp(−d²/w²))"
        elif np.allclose(got, np.exp(-d / width)):
            hint = "square the distance and the width: exp(−d²/w²), then the square root"
        expect_close(got, want, f"lime_kernel(distances, kernel_width={width})", atol=1e-9, rtol=1e-7, hint=hint)

    Z = rng.integers(0, 2, size=(40, 5)).astype(float)
    Z[0] = 1
    y = Z @ rng.normal(size=5) + 0.4 + 0.05 * rng.normal(size=40)
    weights = rng.uniform(0.05, 1.0, size=40)
    for alpha in (1.0, 0.0):
        out = call_safely(fit, Z.copy(), y.copy(), weights.copy(), alpha, name="fit_local_surrogate")
        if not isinstance(out, tuple) or len(out) != 2:
            raise CheckFailed(f"fit_local_surrogate must return a tuple (intercept, coef), got {type(out).__name__}")
        intercept = expect_number(float(out[0]) if isinstance(out[0], np.floating) else out[0],
                                  "the intercept fit_local_surrogate returned", float)
        coef = _as_array(out[1], "the coefficients fit_local_surrogate returned", (5,))
        b, c = ref_fit(Z, y, weights, alpha)
        hint = ""
        unweighted = ref_fit(Z, y, np.ones(40), alpha)[1]
        if np.allclose(coef, unweighted, atol=1e-6) and not np.allclose(unweighted, c, atol=1e-6):
            hint = "the fit ignores the weights: pass sample_weight=weights (or weight the normal equations)"
        expect_close(coef, c, f"the coefficients for alpha={alpha}", atol=1e-6, rtol=1e-5, hint=hint or
                     "centre Z and y with weighted means, then solve (ZcᵀWZc + αI) c = ZcᵀW yc; do not penalise the intercept")
        expect_close(intercept, b, f"the intercept for alpha={alpha}", atol=1e-6, rtol=1e-5,
                     hint="intercept = weighted mean of y − weighted mean of Z · coef")


# --------------------------------------------------------------------------- ex09_3 integrated gradients


@register("ex09_3", points=2, timeout=60)
def check_integrated_gradients(ctx: CheckContext) -> None:
    """``integrated_gradients(f, x, baseline, steps)``: the midpoint Riemann sum along the straight path."""
    from tutorlib.explain.gradients import integrated_gradients as ref_ig

    ig = ctx.function("integrated_gradients")
    W1, b1, W2 = ctx.randn(6, 12), ctx.randn(12), ctx.randn(12)

    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ W1 + b1) @ W2

    x, base = ctx.randn(3, 6), 0.1 * ctx.randn(3, 6)
    for steps in (16, 5):
        got = call_safely(ig, f, x, base, steps, name="integrated_gradients")
        if isinstance(got, tuple):
            got = got[0]
        if not isinstance(got, torch.Tensor):
            raise CheckFailed(f"integrated_gradients returned {type(got).__name__}, expected a tensor of shape (3, 6)")
        if tuple(got.shape) != (3, 6):
            raise CheckFailed(f"integrated_gradients(f, x, baseline, {steps}) has shape {tuple(got.shape)}, expected (3, 6)")
        want, _ = ref_ig(f, x, base, steps=steps, method="riemann_middle")
        hint = ""
        for name, meth in (("left", "riemann_left"), ("right", "riemann_right")):
            alt, _ = ref_ig(f, x, base, steps=steps, method=meth)
            if torch.allclose(got.detach(), alt, atol=1e-5):
                hint = f"you used the {name} end of each interval; take the midpoints α = (k + ½)/steps"
        xg = x.clone().requires_grad_(True)
        grad = torch.autograd.grad(f(xg).sum(), xg)[0]
        if torch.allclose(got.detach(), grad * (x - base), atol=1e-5):
            hint = "this is gradient × input at x only: average the gradients over points on the path from baseline to x"
        elif torch.allclose(got.detach(), want / (x - base), atol=1e-5):
            hint = "multiply the averaged gradient by (x − baseline)"
        expect_close(got.detach(), want, f"integrated_gradients(f, x, baseline, steps={steps})", atol=1e-5, rtol=1e-4,
                     hint=hint)


# --------------------------------------------------------------------------- ex09_4 deletion curve


@register("ex09_4", points=2, timeout=60)
def check_deletion_curve(ctx: CheckContext) -> None:
    """``deletion_curve(prob_fn, ids, order)`` (n+1 probabilities) and ``curve_auc(probs)`` (trapezoid over k/n)."""
    curve_fn = ctx.function("deletion_curve")
    auc_fn = ctx.function("curve_auc")
    rng = _np_gen(ctx)
    n = 7
    ids = [1000 + 3 * i for i in range(n)]
    weight = {t: float(v) for t, v in zip(ids, rng.normal(size=n) * 1.5)}

    def prob_fn(seqs: list[list[int]]) -> np.ndarray:
        return np.array([1 / (1 + np.exp(-sum(weight.get(int(t), 0.0) for t in s))) for s in seqs])

    order = rng.permutation(n).tolist()
    got = call_safely(curve_fn, prob_fn, list(ids), list(order), name="deletion_curve")
    want = reference_deletion_curve(prob_fn, ids, order)
    if got is not None and np.shape(got) == (n,):
        raise CheckFailed(f"deletion_curve returned {n} values, expected {n + 1}: include k = 0 (nothing removed) "
                          "up to k = n (everything removed)")
    got = _as_array(got, "deletion_curve(prob_fn, ids, order)", (n + 1,))
    hint = ""
    rev = reference_deletion_curve(prob_fn, ids, order[::-1])
    if np.allclose(got, rev, atol=1e-9):
        hint = "you removed tokens from the end of `order`: order[0] is the most important, remove it first"
    elif np.allclose(got[::-1], want, atol=1e-9):
        hint = "the curve is reversed: element k is the probability after removing the first k tokens of `order`"
    expect_close(got, want, "deletion_curve(prob_fn, ids, order)", atol=1e-9, rtol=1e-7,
                 hint=hint or "element k: prob_fn of ids without the positions order[:k]")

    for probs in (want, np.array([0.9, 0.2, 0.1]), np.array([0.3, 0.3])):
        area = expect_number(call_safely(auc_fn, probs.copy(), name="curve_auc"), "the result of curve_auc(probs)", float)
        ref = reference_curve_auc(probs)
        hint = ""
        if abs(area - probs.mean()) < 1e-9 and abs(ref - probs.mean()) > 1e-9:
            hint = "the plain mean over-weights the end points: use the trapezoid rule with x = k/n"
        elif abs(area - np.trapezoid(probs)) < 1e-9 and len(probs) > 2:
            hint = "the x-axis runs from 0 to 1 (fraction of tokens removed), not 0..n: pass x=np.linspace(0, 1, len(probs))"
        expect_close(area, ref, f"curve_auc of a {len(probs)}-point curve", atol=1e-9, rtol=1e-7, hint=hint)


# --------------------------------------------------------------------------- ex09_5 attention rollout


@register("ex09_5", points=1, timeout=60)
def check_rollout(ctx: CheckContext) -> None:
    """``rollout(att)``: head-average, mix with the identity, renormalise rows, multiply layer by layer."""
    from tutorlib.explain.text import attention_rollout

    rollout = ctx.function("rollout")
    L, H, T = 4, 3, 6
    att = torch.softmax(2 * ctx.randn(L, H, T, T), dim=-1)
    got = call_safely(rollout, att, name="rollout")
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"rollout(att) returned {type(got).__name__}, expected a (T, T) tensor")
    if tuple(got.shape) != (T, T):
        raise CheckFailed(f"rollout(att) for att of shape {(L, H, T, T)} has shape {tuple(got.shape)}, expected {(T, T)}")
    want = attention_rollout(att)
    hint = ""
    eye = torch.eye(T)
    rev = eye
    for layer in att.mean(1):
        a = 0.5 * layer + 0.5 * eye
        rev = rev @ (a / a.sum(-1, keepdim=True))
    plain = eye
    for layer in att.mean(1):
        plain = layer @ plain
    if torch.allclose(got, rev, atol=1e-5):
        hint = "multiply in the other order: rollout = A_L · … · A_1 (new layer on the left: r = a @ r)"
    elif torch.allclose(got, plain, atol=1e-5):
        hint = "mix each layer with the identity for the residual connection: 0.5·A + 0.5·I, rows renormalised"
    expect_close(got, want, "rollout(att)", atol=1e-5, rtol=1e-4, hint=hint)


# --------------------------------------------------------------------------- ex09_6 reading the LIME stability plot


@register("ex09_6", points=1, timeout=60)
def check_stability_reading(ctx: CheckContext) -> None:
    """``stability`` (from lime_stability), ``most_stable_setting`` and ``noisiest_width`` read from its plot."""
    from tutorlib.explain.tabular import LimeStability

    stab = ctx.get("stability")
    if not isinstance(stab, LimeStability):
        raise CheckFailed(f"`stability` is a {type(stab).__name__}: assign the result of lime_stability(...) to it")
    if len(stab.kernel_widths) < 2 or len(stab.num_samples) < 2:
        raise CheckFailed("run lime_stability with at least two kernel widths and two sample sizes, as the prompt says")
    setting = ctx.get("most_stable_setting")
    if not isinstance(setting, tuple) or len(setting) != 2:
        raise CheckFailed(f"`most_stable_setting` must be a tuple (kernel_width, num_samples), got {setting!r}")
    width, n = setting
    if float(width) not in stab.kernel_widths or int(n) not in stab.num_samples:
        raise CheckFailed(f"{setting!r} is not a setting you ran: widths {stab.kernel_widths}, samples {stab.num_samples}")
    i, j = stab.kernel_widths.index(float(width)), stab.num_samples.index(int(n))
    best = stab.most_stable()
    if stab.spearman[i, j] < stab.spearman.max() - 1e-12:
        raise CheckFailed(f"at {setting!r} the mean Spearman is {stab.spearman[i, j]:.3f}, but {best!r} reaches "
                          f"{stab.spearman.max():.3f}: find the highest point in the left panel")
    noisy = ctx.get("noisiest_width")
    means = stab.spearman.mean(axis=1)
    want = stab.kernel_widths[int(np.argmin(means))]
    if not isinstance(noisy, (int, float)) or float(noisy) not in stab.kernel_widths or \
            means[stab.kernel_widths.index(float(noisy))] > means.min() + 1e-12:
        raise CheckFailed(f"`noisiest_width` is {noisy!r}, but the lowest curve (mean Spearman {means.min():.3f}) is "
                          f"kernel width {want:g}")


# --------------------------------------------------------------------------- ex09_7 the disagreement experiment


@register("ex09_7", points=2, timeout=180)
def check_disagreement(ctx: CheckContext) -> None:
    """``rho_by_text``, ``disagree_text``, ``disagree_attrs``, ``curves`` and ``more_faithful`` tell one consistent story."""
    from tutorlib.explain.agreement import spearman
    from tutorlib.explain.attribution import Attribution
    from tutorlib.explain.faithfulness import DeletionCurve

    candidates = ctx.get("candidates")
    rho_by_text = ctx.get("rho_by_text")
    if not isinstance(rho_by_text, dict) or set(rho_by_text) != set(candidates):
        raise CheckFailed("`rho_by_text` must be a dict with one Spearman ρ (IG vs attention) per sentence of `candidates`")
    text = ctx.get("disagree_text")
    lowest = min(rho_by_text, key=rho_by_text.get)
    if text != lowest:
        raise CheckFailed(f"`disagree_text` should be the candidate with the lowest ρ ({rho_by_text[lowest]:.3f}): "
                          f"{lowest!r}")
    attrs = ctx.get("disagree_attrs")
    if not isinstance(attrs, dict) or set(attrs) != {"ig", "attention"}:
        raise CheckFailed("`disagree_attrs` must be {'ig': Attribution, 'attention': Attribution} for disagree_text")
    for m, a in attrs.items():
        if not isinstance(a, Attribution) or a.method != m or a.text != text:
            raise CheckFailed(f"disagree_attrs[{m!r}] must be explain_text(model, tokenizer, disagree_text, method={m!r})")
    rho = spearman(attrs["ig"], attrs["attention"])
    if abs(rho - float(rho_by_text[text])) > 1e-6:
        raise CheckFailed(f"rho_by_text[disagree_text] is {rho_by_text[text]:.4f} but spearman(ig, attention) of "
                          f"disagree_attrs is {rho:.4f}: use tutorlib.explain.spearman on the two attributions")
    curves = ctx.get("curves")
    if not isinstance(curves, dict) or set(curves) != {"ig", "attention"} or not all(
            isinstance(c, DeletionCurve) for c in curves.values()):
        raise CheckFailed("`curves` must be {'ig': DeletionCurve, 'attention': DeletionCurve} from deletion_curve(...)")
    for m, c in curves.items():
        if len(c.probs) != len(attrs[m]) + 1:
            raise CheckFailed(f"curves[{m!r}] has {len(c.probs)} points, expected {len(attrs[m]) + 1}: "
                              "pass the attribution of disagree_text to deletion_curve")
        if abs(c.probs[0] - attrs[m].prediction) > 1e-3:
            raise CheckFailed(f"curves[{m!r}] starts at p = {c.probs[0]:.4f}, but the model gives "
                              f"{attrs[m].prediction:.4f} on disagree_text: use the same model and sentence")
    answer = ctx.get("more_faithful")
    want = min(curves, key=lambda m: curves[m].auc)
    if answer != want:
        raise CheckFailed(f"`more_faithful` is {answer!r}, but the deletion AUCs are ig {curves['ig'].auc:.3f}, "
                          f"attention {curves['attention'].auc:.3f}: the lower area (faster drop) is more faithful")
