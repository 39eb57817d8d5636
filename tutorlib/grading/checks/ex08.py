"""Checks for lesson 08 (generative models): reparameterization, the KL term, one GAN step, slerp, the Fréchet
distance, and choosing β from a sweep.

Reference answers come from :mod:`tutorlib.generative`; every input is drawn from the check's own generator.

>>> import torch
>>> reference_gan_step  # doctest: +ELLIPSIS
<function reference_gan_step at ...>
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from tutorlib.generative.quality import frechet_distance as reference_fd
from tutorlib.generative.quality import frechet_distance_features
from tutorlib.generative.vae import kl_standard_normal
from tutorlib.generative.vae import reparameterize as reference_reparameterize
from tutorlib.generative.widgets import slerp as reference_slerp

from ..compare import CheckFailed, call_safely, describe, expect_close, expect_finite, expect_number, expect_tensor
from ..protocol import exercise
from ..registry import CheckContext, register

__all__ = ["reference_gan_step", "reference_chosen_beta", "SWEEP_RULE"]

#: ex08_6: the largest β whose validation reconstruction stays within this factor of the sweep's best.
SWEEP_RULE = 1.25


def reference_gan_step(G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                       real: torch.Tensor, z: torch.Tensor) -> tuple[float, float]:
    """One discriminator step, then one generator step (non-saturating loss); returns (d_loss, g_loss) floats.

    >>> G = nn.Sequential(nn.Linear(2, 4)); D = nn.Sequential(nn.Linear(4, 1), nn.Flatten(0))
    >>> opts = torch.optim.SGD(G.parameters(), 0.1), torch.optim.SGD(D.parameters(), 0.1)
    >>> len(reference_gan_step(G, D, *opts, torch.randn(3, 4), torch.randn(3, 2)))
    2
    """
    fake = G(z)
    opt_d.zero_grad()
    real_logits, fake_logits = D(real), D(fake.detach())
    d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
              + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    d_loss.backward()
    opt_d.step()
    opt_g.zero_grad()
    logits = D(fake)
    g_loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    g_loss.backward()
    opt_g.step()
    return d_loss.item(), g_loss.item()


def reference_chosen_beta(sweep: list[dict[str, Any]], factor: float = SWEEP_RULE) -> float:
    """The largest β whose ``recon`` is at most ``factor`` × the smallest ``recon`` of the sweep.

    >>> reference_chosen_beta([{"beta": 1, "recon": 10.0}, {"beta": 4, "recon": 12.0}, {"beta": 8, "recon": 20.0}])
    4.0
    """
    best = min(float(r["recon"]) for r in sweep)
    return max(float(r["beta"]) for r in sweep if float(r["recon"]) <= factor * best)


# --------------------------------------------------------------------------- ex08_1, ex08_2: the VAE's two pieces


@register("ex08_1", points=1, timeout=60)
def check_reparameterize(ctx: CheckContext) -> None:
    """``reparameterize(mu, logvar, eps)``: z = μ + σ ε with σ = exp(½ log σ²), differentiable in μ and log σ²."""
    fn = ctx.function("reparameterize")
    mu, logvar, eps = ctx.randn(6, 4), ctx.randn(6, 4), ctx.randn(6, 4)
    out = call_safely(fn, mu, logvar, eps, name="reparameterize(mu, logvar, eps)")
    what = "reparameterize(mu, logvar, eps)"
    expect_tensor(out, what, shape=mu.shape, dtype=mu.dtype, device=mu.device)
    expect_finite(out, what)
    want = reference_reparameterize(mu, logvar, eps)
    hint = ""
    if torch.allclose(out, mu + logvar.exp() * eps, atol=1e-5):
        hint = "you scaled eps by σ² = exp(logvar): the standard deviation is σ = exp(0.5 * logvar)"
    elif torch.allclose(out, mu + logvar * eps, atol=1e-5):
        hint = "logvar is log σ², not σ: use std = torch.exp(0.5 * logvar)"
    elif torch.allclose(out, mu + torch.exp(0.5 * logvar), atol=1e-5):
        hint = "multiply the standard deviation by eps (the noise is what makes it a sample)"
    elif not torch.allclose(out, want, atol=1e-4) and (out - mu).abs().max() > 0 and eps.abs().max() > 0:
        hint = "use the eps you were given (do not draw new noise): z = mu + torch.exp(0.5 * logvar) * eps"
    expect_close(out, want, what, atol=1e-5, rtol=1e-5, hint=hint)
    # The point of the trick: gradients reach mu and logvar.
    m, lv = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    z = fn(m, lv, eps.clone())
    if not isinstance(z, torch.Tensor) or not z.requires_grad:
        raise CheckFailed("the result does not depend differentiably on mu and logvar: compute it with torch operations "
                          "on the tensors you were given (no .detach(), .item() or torch.normal(...))")
    z.sum().backward()
    if m.grad is None or lv.grad is None:
        raise CheckFailed("no gradient reached mu or logvar through your z: build z from mu and logvar directly")
    expect_close(lv.grad, 0.5 * torch.exp(0.5 * logvar) * eps, "d(sum z)/d(logvar)", atol=1e-5, rtol=1e-4)
    # Statistically it is a draw from N(mu, sigma^2): compare with torch.distributions on many eps.
    mu1, lv1 = torch.tensor([1.5], device=ctx.device), torch.tensor([math.log(0.25)], device=ctx.device)
    big = ctx.randn(20000, 1)
    samples = call_safely(fn, mu1.expand(20000, 1), lv1.expand(20000, 1), big, name=what)
    ref = torch.distributions.Normal(mu1, torch.exp(0.5 * lv1))
    if abs(float(samples.mean()) - float(ref.mean)) > 0.02 or abs(float(samples.std()) - float(ref.stddev)) > 0.02:
        raise CheckFailed(f"20,000 draws with mu=1.5, σ=0.5 have mean {float(samples.mean()):.3f} and std "
                          f"{float(samples.std()):.3f}, expected about 1.5 and 0.5")


@register("ex08_2", points=2, timeout=60)
def check_kl(ctx: CheckContext) -> None:
    """``kl_to_standard_normal(mu, logvar)``: one KL value per row (summed over latent dims), equal to torch.distributions."""
    fn = ctx.function("kl_to_standard_normal")
    mu, logvar = 1.5 * ctx.randn(7, 5), ctx.randn(7, 5)
    what = "kl_to_standard_normal(mu, logvar) for mu, logvar of shape (7, 5)"
    out = call_safely(fn, mu, logvar, name="kl_to_standard_normal")
    std = torch.exp(0.5 * logvar)
    per_dim = torch.distributions.kl_divergence(torch.distributions.Normal(mu, std),
                                                torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu)))
    want = per_dim.sum(dim=1)
    if isinstance(out, torch.Tensor) and out.shape == (7, 5):
        raise CheckFailed(f"{what} has shape (7, 5), expected (7,): sum the per-dimension KL over the latent "
                          "dimension (dim=1), one value per image")
    if isinstance(out, torch.Tensor) and out.dim() == 0:
        raise CheckFailed(f"{what} is a single number, expected one value per row, shape (7,): sum over dim=1 only "
                          "(the training loss takes the batch mean later)")
    expect_tensor(out, what, shape=want.shape, dtype=mu.dtype, device=mu.device)
    expect_finite(out, what)
    hint = ""
    if torch.allclose(out, -want, atol=1e-4):
        hint = "the sign is flipped: KL = 0.5 * sum(mu² + σ² − 1 − log σ²) is never negative"
    elif torch.allclose(out, 2 * want, atol=1e-4):
        hint = "you forgot the factor 0.5"
    elif torch.allclose(out, 0.5 * (mu**2 + logvar - 1 - torch.log(logvar.abs() + 1e-12)).sum(1), atol=1e-4):
        hint = "logvar is log σ² already: σ² = exp(logvar)"
    expect_close(out, want, f"{what}, compared with torch.distributions.kl_divergence(Normal(mu, σ), Normal(0, 1)).sum(1)",
                 atol=1e-4, rtol=1e-4, hint=hint)
    zero = call_safely(fn, torch.zeros(3, 4, device=ctx.device), torch.zeros(3, 4, device=ctx.device),
                       name="kl_to_standard_normal")
    expect_close(zero, torch.zeros(3), "the KL of N(0, 1) to itself", atol=1e-6, rtol=0)
    expect_close(out, kl_standard_normal(mu, logvar, "sum"), what, atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------- ex08_3: one GAN step


def _tiny_gan(ctx: CheckContext) -> tuple[nn.Module, nn.Module]:
    G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 64), nn.Tanh(), nn.Unflatten(1, (1, 8, 8)))
    D = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1), nn.Flatten(0))
    with torch.no_grad():
        for p in list(G.parameters()) + list(D.parameters()):
            p.copy_(0.3 * torch.randn(p.shape, generator=ctx.generator))
    return G.to(ctx.device), D.to(ctx.device)


def _adam(params: Any) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=2e-3, betas=(0.5, 0.999))


@register("ex08_3", points=3, timeout=60)
def check_gan_step(ctx: CheckContext) -> None:
    """``gan_train_step(G, D, opt_g, opt_d, real, z)``: D step (real→1, detached fake→0), then G step (fake→1)."""
    fn = ctx.function("gan_train_step")
    G, D = _tiny_gan(ctx)
    G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)
    opt_g, opt_d = _adam(G.parameters()), _adam(D.parameters())
    ref_g, ref_d = _adam(G_ref.parameters()), _adam(D_ref.parameters())
    tol = {"atol": 1e-5, "rtol": 1e-4}
    for call in (1, 2):
        real = ctx.randn(16, 1, 8, 8).tanh()
        z = ctx.randn(16, 4)
        g_before = [p.detach().clone() for p in G.parameters()]
        out = call_safely(fn, G, D, opt_g, opt_d, real, z, name="gan_train_step", mutable=(0, 1, 2, 3))
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise CheckFailed(f"gan_train_step returned {describe(out)}, expected a pair (d_loss, g_loss) of floats")
        d_loss = expect_number(out[0], f"d_loss returned by call {call}", float)
        g_loss = expect_number(out[1], f"g_loss returned by call {call}", float)
        with torch.no_grad():
            logits_real = D_ref(real)
            real_only = float(F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real)))
        want_d, want_g = reference_gan_step(G_ref, D_ref, ref_g, ref_d, real, z)
        if call == 1 and abs(d_loss - want_d) > 1e-4:
            hint = ("the discriminator loss is BCE(D(real), 1) + BCE(D(fake), 0) with logits "
                    "(F.binary_cross_entropy_with_logits), computed before the update")
            if abs(d_loss - real_only) < 1e-4:
                hint = "add the loss on the fakes: BCE(D(fake.detach()), zeros)"
            expect_close(d_loss, want_d, f"d_loss of call {call}", **tol, hint=hint)
        if all(torch.equal(a, b.detach()) for a, b in zip(g_before, G.parameters())):
            raise CheckFailed("the generator's parameters did not change: after the discriminator step, compute "
                              "g_loss, call g_loss.backward() and opt_g.step()")
        for (name, p), r in zip(D.named_parameters(), D_ref.parameters()):
            expect_close(p.detach(), r.detach(), f"discriminator parameter {name} after call {call}", **tol,
                         hint="the D step is: opt_d.zero_grad(); d_loss with the fakes DETACHED "
                              "(G(z).detach()); d_loss.backward(); opt_d.step() — and the G step must not "
                              "update D (only opt_g.step())"
                              + ("; on the second call leftover gradients from the G step reached D: call "
                                 "opt_d.zero_grad() at the start of the D step" if call == 2 else ""))
        expect_close(d_loss, want_d, f"d_loss of call {call}", **tol)
        for (name, p), r in zip(G.named_parameters(), G_ref.parameters()):
            expect_close(p.detach(), r.detach(), f"generator parameter {name} after call {call}", **tol,
                         hint="the G step is: opt_g.zero_grad(); g_loss = BCE(D(G(z)), ones) (the non-saturating "
                              "loss, through the UPDATED discriminator, not detached); g_loss.backward(); opt_g.step()")
        expect_close(g_loss, want_g, f"g_loss of call {call}", **tol,
                     hint="return g_loss = BCE(D(fake), 1) measured with the updated discriminator")


# --------------------------------------------------------------------------- ex08_4: slerp


@register("ex08_4", points=2, timeout=60)
def check_slerp(ctx: CheckContext) -> None:
    """``slerp(z0, z1, t)``: (T, D) points on the great circle from z0 to z1; endpoints exact; no NaN when parallel."""
    fn = ctx.function("slerp")
    z0, z1 = ctx.randn(16), ctx.randn(16)
    t = torch.linspace(0, 1, 7, device=ctx.device)
    what = "slerp(z0, z1, t) with 16-d z0, z1 and 7 values of t"
    out = call_safely(fn, z0, z1, t, name="slerp")
    want = reference_slerp(z0, z1, t)
    expect_tensor(out, what, shape=want.shape, dtype=want.dtype, device=want.device)
    expect_finite(out, what)
    lerp = (1 - t[:, None]) * z0 + t[:, None] * z1
    hint = ""
    if torch.allclose(out, lerp, atol=1e-4):
        hint = "that is linear interpolation: weight z0 by sin((1−t)Ω)/sin Ω and z1 by sin(tΩ)/sin Ω, Ω = angle between them"
    elif torch.allclose(out, torch.flip(want, [0]), atol=1e-4):
        hint = "the path runs backwards: t=0 must give z0 and t=1 must give z1"
    expect_close(out, want, what, atol=1e-4, rtol=1e-4, hint=hint)
    e1, e2 = torch.zeros(3, device=ctx.device), torch.zeros(3, device=ctx.device)
    e1[0], e2[1] = 1.0, 1.0
    mid = call_safely(fn, e1, e2, torch.tensor([0.5], device=ctx.device), name="slerp")
    expect_close(mid, torch.tensor([[math.sqrt(0.5), math.sqrt(0.5), 0.0]]), "slerp of two orthogonal unit vectors at t=0.5",
                 atol=1e-4, rtol=1e-4, hint="the midpoint of a quarter circle stays on the unit circle")
    par = call_safely(fn, z0, 2 * z0, t, name="slerp")
    expect_tensor(par, "slerp(z0, 2·z0, t) (parallel vectors)", shape=want.shape)
    expect_finite(par, "slerp(z0, 2·z0, t) (parallel vectors): sin Ω = 0 there, so fall back to linear interpolation;")
    expect_close(par, (1 - t[:, None]) * z0 + t[:, None] * 2 * z0, "slerp(z0, 2·z0, t) (parallel vectors)",
                 atol=1e-3, rtol=1e-3, hint="when sin Ω is (nearly) 0, return the straight line (1−t)·z0 + t·z1")


# --------------------------------------------------------------------------- ex08_5: Fréchet distance


def _features(ctx: CheckContext, n: int, d: int, shift: float, scale: float) -> torch.Tensor:
    mix = torch.randn(d, d, generator=ctx.generator) / math.sqrt(d)
    return (torch.randn(n, d, generator=ctx.generator) * scale) @ (torch.eye(d) + mix) + shift


@register("ex08_5", points=2, timeout=60)
def check_frechet(ctx: CheckContext) -> None:
    """``frechet_distance(feats_a, feats_b)``: FD of Gaussians fitted to two (N, D) feature sets, as a float."""
    fn = ctx.function("frechet_distance")
    a = _features(ctx, 300, 6, 0.0, 1.0)
    b = _features(ctx, 250, 6, 0.7, 1.6)
    what = "frechet_distance(feats_a, feats_b) for two sets of 6-d features"
    got = call_safely(fn, a, b, name="frechet_distance")
    if isinstance(got, complex) or (isinstance(got, np.ndarray) and np.iscomplexobj(got)):
        raise CheckFailed(f"{what} is complex: scipy.linalg.sqrtm can return tiny imaginary parts from round-off; "
                          "keep the real part (covmean.real) before taking the trace")
    got = expect_number(got, what, float)
    want = frechet_distance_features(a, b)
    na, nb = a.double().numpy(), b.double().numpy()
    ma, mb = na.mean(0), nb.mean(0)
    sa, sb = np.cov(na, rowvar=False), np.cov(nb, rowvar=False)
    tr_cm = float(np.trace(scipy.linalg.sqrtm(sa @ sb).real))
    mean_term = float(((ma - mb) ** 2).sum())
    wrong = {
        "you used the biased covariance (ddof=0): FID uses np.cov(features, rowvar=False), which divides by N − 1":
            reference_fd(ma, np.cov(na, rowvar=False, ddof=0), mb, np.cov(nb, rowvar=False, ddof=0)),
        "the mean term is missing: add ‖μ_a − μ_b‖²": np.trace(sa) + np.trace(sb) - 2 * tr_cm,
        "the cross term needs a factor 2: − 2·tr((Σ_a Σ_b)^½)": mean_term + np.trace(sa) + np.trace(sb) - tr_cm,
        "take the matrix square root of Σ_a Σ_b (scipy.linalg.sqrtm), not the square root of each entry":
            mean_term + np.trace(sa) + np.trace(sb) - 2 * np.trace(np.sqrt(np.abs(sa @ sb))),
    }
    hints = [msg for msg, value in wrong.items() if abs(got - float(value)) < 1e-6 * max(1.0, abs(want))]
    expect_close(got, want, what, atol=1e-4, rtol=1e-4, hint=hints[0] if hints else
                 "FD = ‖μ_a − μ_b‖² + tr(Σ_a) + tr(Σ_b) − 2·tr(sqrtm(Σ_a Σ_b)) with means and covariances over samples (rows)")
    same = expect_number(call_safely(fn, a, a.clone(), name="frechet_distance"), "frechet_distance(x, x)", float)
    if abs(same) > 1e-4:
        raise CheckFailed(f"frechet_distance(x, x) is {same:.3g}, expected 0 for identical feature sets")
    # Closed form: two independent Gaussians with diagonal covariances.
    big_a = torch.randn(4000, 3, generator=ctx.generator) * torch.tensor([1.0, 2.0, 0.5])
    big_b = torch.randn(4000, 3, generator=ctx.generator) * torch.tensor([2.0, 1.0, 0.5]) + torch.tensor([1.0, 0.0, 0.0])
    closed = 1.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + 0.0
    value = expect_number(call_safely(fn, big_a, big_b, name="frechet_distance"), "frechet_distance on two diagonal Gaussians", float)
    if abs(value - closed) > 0.25:
        raise CheckFailed(f"on samples of N(0, diag(1, 4, 0.25)) and N((1, 0, 0), diag(4, 1, 0.25)) your distance is "
                          f"{value:.3f}; the closed form ‖Δμ‖² + Σ(σ_a − σ_b)² is {closed:.1f}")


# --------------------------------------------------------------------------- ex08_6: read the β sweep


_SWEEP_KEYS = ("beta", "recon", "kl")


def _sweep_row(row: Any) -> Any:
    """What crosses the boundary for one row of the learner's sweep: its numbers and its model's weights."""
    if not isinstance(row, dict):
        return {"not_a_dict": describe(row)}
    out: dict[str, Any] = {k: row[k] for k in _SWEEP_KEYS if k in row}
    model = row.get("model")
    if isinstance(model, nn.Module):
        out["model"] = dict(model.state_dict())
    elif model is not None:
        out["model"] = describe(model)
    return out


@exercise("ex08_6", points=2, timeout=120)
class BetaChoiceCheck:
    """``sweep`` (from ``beta_sweep``) covers β from ≤ 0.5 to ≥ 4, its numbers are those of its own trained models
    (re-measured by the check on the validation digits), and ``chosen_beta`` follows the stated rule."""

    names = ("sweep", "chosen_beta")
    hints = (
        "keep the list beta_sweep returns as it is: each row holds the trained model, and the check re-measures it.",
        "the rule: best = min(r['recon'] for r in sweep); chosen_beta = the largest r['beta'] with r['recon'] <= 1.25 * best.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Any, inputs: dict) -> dict:
        sweep = learner.get("sweep")
        chosen = learner.get("chosen_beta")
        rows = [_sweep_row(r) for r in sweep] if isinstance(sweep, (list, tuple)) else describe(sweep)
        return {"sweep": rows, "chosen_beta": chosen if isinstance(chosen, (int, float)) else describe(chosen)}

    def compare(self, inputs: dict, outputs: dict) -> str:
        from tutorlib.data import load_digits
        from tutorlib.generative.vae import ConvVAE, evaluate_vae

        sweep = outputs["sweep"]
        if isinstance(sweep, str) or not sweep:
            raise CheckFailed(f"`sweep` is {sweep or 'an empty list'}, expected the list of dicts that beta_sweep(...) returns")
        for i, row in enumerate(sweep):
            if "not_a_dict" in row or not set(_SWEEP_KEYS) <= set(row):
                what = row.get("not_a_dict", f"a dict with keys {sorted(row)}")
                raise CheckFailed(f"sweep[{i}] is {what}, expected a dict with 'beta', 'recon' and 'kl' "
                                  "(run beta_sweep and keep what it returns)")
            for key in _SWEEP_KEYS:
                v = row[key]
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                    raise CheckFailed(f"sweep[{i}][{key!r}] is {v!r}, expected a finite number")
            if row["recon"] <= 0 or row["kl"] < 0:
                raise CheckFailed(f"sweep[{i}] has recon={row['recon']:.3g}, kl={row['kl']:.3g}: reconstruction loss "
                                  "must be positive and KL non-negative — did you copy the numbers by hand?")
        betas = sorted({float(r["beta"]) for r in sweep})
        if len(betas) < 4 or betas[0] > 0.5 or betas[-1] < 4:
            raise CheckFailed(f"the sweep has β = {betas}: sweep at least 4 different values from 0.5 (or less) to 4 (or more)")
        # The numbers must come from the run: re-measure each row's own model on the validation digits.
        val = load_digits("val")
        for i, row in enumerate(sweep):
            state = row.get("model")
            if not isinstance(state, dict):
                raise CheckFailed(f"sweep[{i}] has no trained 'model' (it is {state or 'missing'}): keep the rows beta_sweep "
                                  "returns as they are — the numbers of a report must come from the run, not be typed in")
            model = ConvVAE(latent_dim=8)
            try:
                model.load_state_dict(state)
            except (RuntimeError, KeyError) as exc:
                first = str(exc).strip().splitlines()[0][:200]
                raise CheckFailed(f"sweep[{i}]['model'] is not a ConvVAE(latent_dim=8) ({first}): build the sweep's models "
                                  "with lambda: gen.ConvVAE(latent_dim=8)") from None
            measured = evaluate_vae(model, val)
            for key in ("recon", "kl"):
                if abs(float(row[key]) - measured[key]) > 1e-3 * abs(measured[key]) + 1e-2:
                    raise CheckFailed(
                        f"sweep[{i}] (β = {float(row['beta']):g}) reports {key} = {float(row[key]):.4g}, but its own model "
                        f"measures {measured[key]:.4g} nats/image on load_digits('val'): report the numbers beta_sweep "
                        "returned for that model, measured on the validation digits")
        chosen = expect_number(outputs["chosen_beta"], "`chosen_beta`", float)
        want = reference_chosen_beta(list(sweep))
        if abs(chosen - want) > 1e-9:
            best = min(sweep, key=lambda r: r["recon"])
            hint = ""
            if abs(chosen - float(best["beta"])) < 1e-9:
                hint = " — that β reconstructs best; the rule asks for the LARGEST β still within 25 % of that reconstruction"
            elif chosen not in betas:
                hint = f" — pick one of the swept values {betas}"
            raise CheckFailed(f"chosen_beta is {chosen:g}, but in your sweep the largest β whose reconstruction is within "
                              f"25 % of the best ({float(best['recon']):.2f} nats) is {want:g}{hint}")
        return f"β = {want:g} keeps reconstruction within 25 % of the best while paying the most attention to the KL"
