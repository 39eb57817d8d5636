"""Checks for lesson 09 (explainability): Shapley values, LIME's kernel and fit, integrated gradients,
the deletion curve, attention rollout, reading the LIME-stability plot, and the disagreement experiment.

Every check follows the protocol (:mod:`tutorlib.grading.protocol`): ``inputs`` draws the data from the
generator it is given, ``call`` runs the learner's code and returns plain data (NumPy results become
float64 tensors on the way), ``compare`` checks it against :mod:`tutorlib.explain`. For the reading and
the experiment exercises ``call`` returns the numbers behind the plots, and ``compare`` re-derives the
answers (the Spearman ρ, the deletion AUCs) from them.

>>> import numpy as np
>>> reference_shapley(lambda X: X[:, 0] * X[:, 1], np.array([2.0, 3.0]), np.zeros(2)).tolist()
[3.0, 3.0]
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..compare import CheckFailed, describe, expect_close, expect_number
from ..protocol import Learner, exercise

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


def _np_gen(gen: torch.Generator) -> np.random.Generator:
    return np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))


def _plain(value: Any) -> Any:
    """NumPy results as plain data for the wire: arrays → float64 tensors, NumPy scalars → Python numbers."""
    if isinstance(value, np.ndarray):
        try:
            return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float64))
        except (TypeError, ValueError):
            return describe(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- ex09_1 exact Shapley values


def _shapley_cases(inputs: dict) -> list[tuple[str, Callable[[np.ndarray], np.ndarray], np.ndarray, np.ndarray]]:
    w = np.asarray(inputs["w"], dtype=np.float64)

    def interaction(X: np.ndarray) -> np.ndarray:
        return w[0] * X[:, 0] + X[:, 1] * X[:, 2] - 0.5 * X[:, 3] ** 2 + X[:, 0] * X[:, 3]

    def three(X: np.ndarray) -> np.ndarray:
        return np.maximum(X[:, 0], X[:, 1]) + 2 * X[:, 2]

    def triple(X: np.ndarray) -> np.ndarray:  # a three-way interaction: equal coalition weights (Banzhaf) differ here
        return X[:, 0] * X[:, 1] * X[:, 2] + X[:, 3]

    arr = [np.asarray(inputs[k], dtype=np.float64) for k in ("x1", "b1", "x2", "x3")]
    return [("a 4-feature function with interactions", interaction, arr[0], arr[1]),
            ("f = max(x0, x1) + 2·x2", three, arr[2], np.zeros(3)),
            ("f = x0·x1·x2 + x3 (a three-way interaction)", triple, arr[3], np.zeros(4))]


@exercise("ex09_1", points=2, timeout=60)
class ShapleyCheck:
    """``shapley_values(f, x, baseline)``: exact Shapley values for small functions, against one baseline row."""

    names = ("shapley_values",)
    reference = ("tutorlib.explain.shapley.exact_shapley", "tutorlib.grading.checks.ex09.reference_shapley")
    hints = (
        "for feature i, loop over every coalition S of the other features: the input takes x on S (and on S ∪ {i}), the baseline elsewhere.",
        "the marginal contribution f(S ∪ {i}) − f(S) is weighted by |S|!(d−|S|−1)!/d!; sum over all S.",
        "check: the values add up to f(x) − f(baseline) (efficiency). itertools.combinations gives the coalitions.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        rng = _np_gen(gen)
        return {"w": rng.normal(size=4).tolist(), "x1": rng.normal(size=4).tolist(), "b1": rng.normal(size=4).tolist(),
                "x2": rng.normal(size=3).tolist(), "x3": (rng.normal(size=4) + 1.5).tolist()}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn = learner.function("shapley_values")
        return [_plain(learner.call(fn, f, x.copy(), base.copy(), name="shapley_values"))
                for _, f, x, base in _shapley_cases(inputs)]

    def compare(self, inputs: dict, outputs: list) -> None:
        for (label, f, x, base), got in zip(_shapley_cases(inputs), outputs):
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


@exercise("ex09_2", points=2, timeout=60)
class LimePartsCheck:
    """``lime_kernel(distances, kernel_width)`` and ``fit_local_surrogate(Z, y, weights, alpha)`` match LIME's."""

    names = ("lime_kernel", "fit_local_surrogate")
    reference = ("tutorlib.explain.surrogate.lime_kernel", "tutorlib.explain.surrogate.fit_local_surrogate")
    hints = (
        "LIME's kernel is sqrt(exp(−d² / w²)): square the distance and the width, then take the square root of the exponential.",
        "the surrogate is a weighted ridge regression: centre Z and y with the WEIGHTED means first, and do not penalise the intercept.",
        "solve (ZcᵀWZc + αI) c = ZcᵀW yc; intercept = weighted mean of y − weighted mean of Z · c; return (intercept, coef).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        rng = _np_gen(gen)
        d = rng.uniform(0, 80, size=9)
        Z = rng.integers(0, 2, size=(40, 5)).astype(float)
        Z[0] = 1
        y = Z @ rng.normal(size=5) + 0.4 + 0.05 * rng.normal(size=40)
        weights = rng.uniform(0.05, 1.0, size=40)
        t = lambda a: torch.from_numpy(a)  # noqa: E731
        return {"d": t(d), "widths": [25.0, 7.5], "Z": t(Z), "y": t(y), "weights": t(weights), "alphas": [1.0, 0.0]}

    def call(self, learner: Learner, inputs: dict) -> dict:
        kernel, fit = learner.function("lime_kernel"), learner.function("fit_local_surrogate")
        d, Z, y, w = (inputs[k].numpy() for k in ("d", "Z", "y", "weights"))
        kernels = [_plain(learner.call(kernel, d.copy(), width, name="lime_kernel")) for width in inputs["widths"]]
        fits = [_plain(learner.call(fit, Z.copy(), y.copy(), w.copy(), alpha, name="fit_local_surrogate"))
                for alpha in inputs["alphas"]]
        return {"kernels": kernels, "fits": fits}

    def compare(self, inputs: dict, outputs: dict) -> None:
        from tutorlib.explain.surrogate import fit_local_surrogate as ref_fit
        from tutorlib.explain.surrogate import lime_kernel as ref_kernel

        d, Z, y, weights = (inputs[k].numpy() for k in ("d", "Z", "y", "weights"))
        for width, got in zip(inputs["widths"], outputs["kernels"]):
            got = _as_array(got, f"lime_kernel(distances, {width})", d.shape)
            want = ref_kernel(d, width)
            hint = ""
            if np.allclose(got, np.exp(-d ** 2 / width ** 2)):
                hint = "LIME takes the square root: sqrt(exp(−d²/w²))"
            elif np.allclose(got, np.exp(-d / width)):
                hint = "square the distance and the width: exp(−d²/w²), then the square root"
            expect_close(got, want, f"lime_kernel(distances, kernel_width={width})", atol=1e-9, rtol=1e-7, hint=hint)
        for alpha, out in zip(inputs["alphas"], outputs["fits"]):
            if not isinstance(out, tuple) or len(out) != 2:
                raise CheckFailed(f"fit_local_surrogate must return a tuple (intercept, coef), got {describe(out)}")
            intercept = out[0]
            if isinstance(intercept, torch.Tensor) and intercept.numel() == 1:
                intercept = float(intercept)
            intercept = expect_number(intercept, "the intercept fit_local_surrogate returned", float)
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


def _ig_f(inputs: dict, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    W1, b1, W2 = (inputs[k].to(device) for k in ("W1", "b1", "W2"))

    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ W1 + b1) @ W2

    return f


@exercise("ex09_3", points=2, timeout=60)
class IntegratedGradientsCheck:
    """``integrated_gradients(f, x, baseline, steps)``: the midpoint Riemann sum along the straight path."""

    names = ("integrated_gradients",)
    reference = ("tutorlib.explain.gradients.integrated_gradients",)
    hints = (
        "walk the straight path from the baseline to x: points baseline + α (x − baseline) for α in (0, 1).",
        "use the midpoints α = (k + ½) / steps, k = 0..steps−1; average the gradients of f(point).sum() at those points.",
        "multiply the averaged gradient by (x − baseline): attributions of the shape of x.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"W1": torch.randn(6, 12, generator=gen), "b1": torch.randn(12, generator=gen), "W2": torch.randn(12, generator=gen),
                "x": torch.randn(3, 6, generator=gen), "base": 0.1 * torch.randn(3, 6, generator=gen), "steps": [16, 5]}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, dev = learner.function("integrated_gradients"), learner.device
        f = _ig_f(inputs, dev)
        outs = []
        for steps in inputs["steps"]:
            got = learner.call(fn, f, inputs["x"].to(dev), inputs["base"].to(dev), steps, name="integrated_gradients")
            if isinstance(got, tuple):
                got = got[0]
            outs.append(got.detach() if isinstance(got, torch.Tensor) else _plain(got))
        return outs

    def compare(self, inputs: dict, outputs: list) -> None:
        from tutorlib.explain.gradients import integrated_gradients as ref_ig

        f = _ig_f(inputs, torch.device("cpu"))
        x, base = inputs["x"], inputs["base"]
        for steps, got in zip(inputs["steps"], outputs):
            if not isinstance(got, torch.Tensor):
                raise CheckFailed(f"integrated_gradients returned {describe(got)}, expected a tensor of shape (3, 6)")
            if tuple(got.shape) != (3, 6):
                raise CheckFailed(f"integrated_gradients(f, x, baseline, {steps}) has shape {tuple(got.shape)}, expected (3, 6)")
            got = got.cpu().float()
            want, _ = ref_ig(f, x, base, steps=steps, method="riemann_middle")
            hint = ""
            for name, meth in (("left", "riemann_left"), ("right", "riemann_right")):
                alt, _ = ref_ig(f, x, base, steps=steps, method=meth)
                if torch.allclose(got, alt, atol=1e-5):
                    hint = f"you used the {name} end of each interval; take the midpoints α = (k + ½)/steps"
            xg = x.clone().requires_grad_(True)
            grad = torch.autograd.grad(f(xg).sum(), xg)[0]
            if torch.allclose(got, grad * (x - base), atol=1e-5):
                hint = "this is gradient × input at x only: average the gradients over points on the path from baseline to x"
            elif torch.allclose(got, want / (x - base), atol=1e-5):
                hint = "multiply the averaged gradient by (x − baseline)"
            expect_close(got, want, f"integrated_gradients(f, x, baseline, steps={steps})", atol=1e-5, rtol=1e-4, hint=hint)


# --------------------------------------------------------------------------- ex09_4 deletion curve


def _prob_fn(weights: list[float], ids: list[int]) -> Callable[[list[list[int]]], np.ndarray]:
    weight = {t: float(v) for t, v in zip(ids, weights)}

    def prob_fn(seqs: list[list[int]]) -> np.ndarray:
        return np.array([1 / (1 + np.exp(-sum(weight.get(int(t), 0.0) for t in s))) for s in seqs])

    return prob_fn


@exercise("ex09_4", points=2, timeout=60)
class DeletionCurveCheck:
    """``deletion_curve(prob_fn, ids, order)`` (n+1 probabilities) and ``curve_auc(probs)`` (trapezoid over k/n)."""

    names = ("deletion_curve", "curve_auc")
    reference = ("tutorlib.explain.faithfulness.deletion_curve_from_fn", "tutorlib.explain.faithfulness.deletion_auc")
    hints = (
        "element k of the curve is prob_fn of ids with the positions order[:k] removed, for k = 0 (nothing removed) to n (all removed): n + 1 values.",
        "order[0] is the most important position: remove it first.",
        "the area uses the trapezoid rule over x = k/n from 0 to 1: np.trapezoid(probs, np.linspace(0, 1, len(probs))).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        rng = _np_gen(gen)
        n = 7
        return {"ids": [1000 + 3 * i for i in range(n)], "weights": (rng.normal(size=n) * 1.5).tolist(),
                "order": rng.permutation(n).tolist(), "extra": [[0.9, 0.2, 0.1], [0.3, 0.3]]}

    def _curves(self, inputs: dict) -> list[np.ndarray]:
        want = reference_deletion_curve(_prob_fn(inputs["weights"], inputs["ids"]), inputs["ids"], inputs["order"])
        return [want] + [np.array(p) for p in inputs["extra"]]

    def call(self, learner: Learner, inputs: dict) -> dict:
        curve_fn, auc_fn = learner.function("deletion_curve"), learner.function("curve_auc")
        prob_fn = _prob_fn(inputs["weights"], inputs["ids"])
        curve = _plain(learner.call(curve_fn, prob_fn, list(inputs["ids"]), list(inputs["order"]), name="deletion_curve"))
        areas = [_plain(learner.call(auc_fn, p.copy(), name="curve_auc")) for p in self._curves(inputs)]
        return {"curve": curve, "areas": areas}

    def compare(self, inputs: dict, outputs: dict) -> None:
        ids, order = inputs["ids"], inputs["order"]
        n = len(ids)
        prob_fn = _prob_fn(inputs["weights"], ids)
        got = outputs["curve"]
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
        for probs, area in zip(self._curves(inputs), outputs["areas"]):
            area = expect_number(area, "the result of curve_auc(probs)", float)
            ref = reference_curve_auc(probs)
            hint = ""
            if abs(area - probs.mean()) < 1e-9 and abs(ref - probs.mean()) > 1e-9:
                hint = "the plain mean over-weights the end points: use the trapezoid rule with x = k/n"
            elif abs(area - np.trapezoid(probs)) < 1e-9 and len(probs) > 2:
                hint = "the x-axis runs from 0 to 1 (fraction of tokens removed), not 0..n: pass x=np.linspace(0, 1, len(probs))"
            expect_close(area, ref, f"curve_auc of a {len(probs)}-point curve", atol=1e-9, rtol=1e-7, hint=hint)


# --------------------------------------------------------------------------- ex09_5 attention rollout


@exercise("ex09_5", points=1, timeout=60)
class RolloutCheck:
    """``rollout(att)``: head-average, mix with the identity, renormalise rows, multiply layer by layer."""

    names = ("rollout",)
    reference = ("tutorlib.explain.text.attention_rollout",)
    hints = (
        "average the heads of each layer: att.mean(1) gives one (T, T) matrix per layer.",
        "account for the residual connection: A = 0.5·A + 0.5·I, then renormalise each row to sum to 1.",
        "multiply layer by layer with the new layer on the left: r = A_l @ r, starting from the identity.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"att": torch.softmax(2 * torch.randn(4, 3, 6, 6, generator=gen), dim=-1)}

    def call(self, learner: Learner, inputs: dict) -> Any:
        got = learner.call(learner.function("rollout"), inputs["att"].to(learner.device), name="rollout")
        return got.detach() if isinstance(got, torch.Tensor) else _plain(got)

    def compare(self, inputs: dict, outputs: Any) -> None:
        from tutorlib.explain.text import attention_rollout

        att = inputs["att"]
        L, H, T, _ = att.shape
        got = outputs
        if not isinstance(got, torch.Tensor):
            raise CheckFailed(f"rollout(att) returned {describe(got)}, expected a (T, T) tensor")
        if tuple(got.shape) != (T, T):
            raise CheckFailed(f"rollout(att) for att of shape {(L, H, T, T)} has shape {tuple(got.shape)}, expected {(T, T)}")
        got = got.cpu().float()
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


@exercise("ex09_6", points=1, timeout=60)
class StabilityReadingCheck:
    """``stability`` (from lime_stability), ``most_stable_setting`` and ``noisiest_width`` read from its plot."""

    names = ("stability", "most_stable_setting", "noisiest_width")
    hints = (
        "the left panel plots the mean Spearman ρ across seeds: the highest point is the most stable (kernel_width, num_samples).",
        "most_stable_setting is a tuple (kernel_width, num_samples) you ran; noisiest_width is the width of the lowest curve on average.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Learner, inputs: dict) -> dict:
        from tutorlib.explain.tabular import LimeStability

        stab = learner.get("stability")
        if not isinstance(stab, LimeStability):
            raise CheckFailed(f"`stability` is a {type(stab).__name__}: assign the result of lime_stability(...) to it")
        return {"widths": [float(w) for w in stab.kernel_widths], "sizes": [int(n) for n in stab.num_samples],
                "spearman": _plain(np.asarray(stab.spearman)), "setting": _plain(learner.get("most_stable_setting")),
                "noisy": _plain(learner.get("noisiest_width"))}

    def compare(self, inputs: dict, outputs: dict) -> None:
        widths, sizes = outputs["widths"], outputs["sizes"]
        if len(widths) < 2 or len(sizes) < 2:
            raise CheckFailed("run lime_stability with at least two kernel widths and two sample sizes, as the prompt says")
        spearman = _as_array(outputs["spearman"], "stability.spearman", (len(widths), len(sizes)))
        setting = outputs["setting"]
        if not isinstance(setting, tuple) or len(setting) != 2:
            raise CheckFailed(f"`most_stable_setting` must be a tuple (kernel_width, num_samples), got {setting!r}")
        width, n = setting
        if not isinstance(width, (int, float)) or not isinstance(n, (int, float)) or float(width) not in widths or int(n) not in sizes:
            raise CheckFailed(f"{setting!r} is not a setting you ran: widths {widths}, samples {sizes}")
        i, j = widths.index(float(width)), sizes.index(int(n))
        bi, bj = np.unravel_index(int(np.argmax(spearman)), spearman.shape)
        best = (widths[bi], sizes[bj])
        if spearman[i, j] < spearman.max() - 1e-12:
            raise CheckFailed(f"at {setting!r} the mean Spearman is {spearman[i, j]:.3f}, but {best!r} reaches "
                              f"{spearman.max():.3f}: find the highest point in the left panel")
        noisy = outputs["noisy"]
        means = spearman.mean(axis=1)
        want = widths[int(np.argmin(means))]
        if isinstance(noisy, bool) or not isinstance(noisy, (int, float)) or float(noisy) not in widths or \
                means[widths.index(float(noisy))] > means.min() + 1e-12:
            raise CheckFailed(f"`noisiest_width` is {noisy!r}, but the lowest curve (mean Spearman {means.min():.3f}) is "
                              f"kernel width {want:g}")


# --------------------------------------------------------------------------- ex09_7 the disagreement experiment


@exercise("ex09_7", points=2, timeout=180)
class DisagreementCheck:
    """``rho_by_text``, ``disagree_text``, ``disagree_attrs``, ``curves`` and ``more_faithful`` tell one consistent story.

    ``call`` returns the numbers (ρ per sentence, the two attributions' scores, the deletion curves);
    ``compare`` recomputes ρ from the scores and the areas from the curves, so a made-up answer fails.
    """

    names = ("candidates", "rho_by_text", "disagree_text", "disagree_attrs", "curves", "more_faithful")
    hints = (
        "for each candidate sentence explain it with method='ig' and method='attention' and store spearman(ig, attention) in rho_by_text.",
        "disagree_text is the sentence with the LOWEST ρ; keep its two attributions in disagree_attrs and run deletion_curve on each.",
        "more_faithful is the method whose deletion curve has the lower area (the prediction drops faster).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Learner, inputs: dict) -> dict:
        from tutorlib.explain.attribution import Attribution
        from tutorlib.explain.faithfulness import DeletionCurve

        candidates = list(learner.get("candidates"))
        rho = learner.get("rho_by_text")
        if not isinstance(rho, dict) or set(rho) != set(candidates):
            raise CheckFailed("`rho_by_text` must be a dict with one Spearman ρ (IG vs attention) per sentence of `candidates`")
        attrs = learner.get("disagree_attrs")
        if not isinstance(attrs, dict) or set(attrs) != {"ig", "attention"} or not all(isinstance(a, Attribution) for a in attrs.values()):
            raise CheckFailed("`disagree_attrs` must be {'ig': Attribution, 'attention': Attribution} for disagree_text")
        curves = learner.get("curves")
        if not isinstance(curves, dict) or set(curves) != {"ig", "attention"} or not all(
                isinstance(c, DeletionCurve) for c in curves.values()):
            raise CheckFailed("`curves` must be {'ig': DeletionCurve, 'attention': DeletionCurve} from deletion_curve(...)")
        return {"candidates": candidates, "rho": [[t, _plain(rho[t])] for t in candidates],
                "text": learner.get("disagree_text"),
                "attrs": {m: {"method": a.method, "text": a.text, "prediction": float(a.prediction),
                              "scores": _plain(np.asarray(a.scores, dtype=np.float64))} for m, a in attrs.items()},
                "curves": {m: _plain(np.asarray(c.probs, dtype=np.float64)) for m, c in curves.items()},
                "answer": learner.get("more_faithful")}

    def compare(self, inputs: dict, outputs: dict) -> None:
        from tutorlib.explain.agreement import spearman

        rho_by_text = {t: expect_number(v, f"rho_by_text[{t!r}]", float) for t, v in outputs["rho"]}
        text = outputs["text"]
        lowest = min(rho_by_text, key=rho_by_text.get)
        if text != lowest:
            raise CheckFailed(f"`disagree_text` should be the candidate with the lowest ρ ({rho_by_text[lowest]:.3f}): "
                              f"{lowest!r}")
        attrs = outputs["attrs"]
        for m, a in attrs.items():
            if a["method"] != m or a["text"] != text:
                raise CheckFailed(f"disagree_attrs[{m!r}] must be explain_text(model, tokenizer, disagree_text, method={m!r})")
        scores = {m: _as_array(a["scores"], f"disagree_attrs[{m!r}].scores", tuple(a["scores"].shape)) for m, a in attrs.items()}
        rho = spearman(scores["ig"], scores["attention"])
        if abs(rho - rho_by_text[text]) > 1e-6:
            raise CheckFailed(f"rho_by_text[disagree_text] is {rho_by_text[text]:.4f} but spearman(ig, attention) of "
                              f"disagree_attrs is {rho:.4f}: use tutorlib.explain.spearman on the two attributions")
        aucs = {}
        for m, probs in outputs["curves"].items():
            probs = _as_array(probs, f"curves[{m!r}].probs", tuple(np.shape(probs)))
            if len(probs) != len(scores[m]) + 1:
                raise CheckFailed(f"curves[{m!r}] has {len(probs)} points, expected {len(scores[m]) + 1}: "
                                  "pass the attribution of disagree_text to deletion_curve")
            if abs(probs[0] - attrs[m]["prediction"]) > 1e-3:
                raise CheckFailed(f"curves[{m!r}] starts at p = {probs[0]:.4f}, but the model gives "
                                  f"{attrs[m]['prediction']:.4f} on disagree_text: use the same model and sentence")
            aucs[m] = reference_curve_auc(probs)
        answer = outputs["answer"]
        want = min(aucs, key=aucs.get)
        if answer != want:
            raise CheckFailed(f"`more_faithful` is {answer!r}, but the deletion AUCs are ig {aucs['ig']:.3f}, "
                              f"attention {aucs['attention']:.3f}: the lower area (faster drop) is more faithful")
