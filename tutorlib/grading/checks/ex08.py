"""Checks for lesson 08 (generative models): reparameterization, the KL term, one GAN step, slerp, the Fréchet
distance, and choosing β from a sweep.

Reference answers come from :mod:`tutorlib.generative`; every input is drawn from the check's own generator.

>>> import torch
>>> reference_gan_step  # doctest: +ELLIPSIS
<function reference_gan_step at ...>
"""

from __future__ import annotations

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

from ..compare import CheckFailed, describe, expect_close, expect_finite, expect_number, expect_tensor
from ..protocol import exercise

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


@exercise("ex08_1", points=1, timeout=60)
class ReparameterizeCheck:
    """``reparameterize(mu, logvar, eps)``: z = μ + σ ε with σ = exp(½ log σ²), differentiable in μ and log σ²."""

    names = ("reparameterize",)
    reference = ("tutorlib.generative.vae.reparameterize",)
    hints = (
        "logvar is log σ², so the standard deviation is σ = torch.exp(0.5 * logvar).",
        "z = mu + torch.exp(0.5 * logvar) * eps, using the eps you were given.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"mu": torch.randn(6, 4, generator=gen), "logvar": torch.randn(6, 4, generator=gen),
                "eps": torch.randn(6, 4, generator=gen), "big": torch.randn(20000, 1, generator=gen)}

    def call(self, learner: Any, inputs: dict) -> dict:
        fn, dev = learner.function("reparameterize"), learner.device
        mu, logvar, eps = (inputs[k].to(dev) for k in ("mu", "logvar", "eps"))
        what = "reparameterize(mu, logvar, eps)"
        out = learner.call(fn, mu, logvar, eps, name=what)
        m, lv = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
        z = learner.call(fn, m, lv, eps.clone(), name=what, mutable=(0, 1))
        grads: Any = None
        if isinstance(z, torch.Tensor) and z.requires_grad:
            z.sum().backward()
            grads = {"mu": m.grad, "logvar": lv.grad}
        mu1, lv1 = torch.tensor([1.5], device=dev), torch.tensor([math.log(0.25)], device=dev)
        samples = learner.call(fn, mu1.expand(20000, 1), lv1.expand(20000, 1), inputs["big"].to(dev), name=what)
        return {"out": out, "differentiable": bool(isinstance(z, torch.Tensor) and z.requires_grad), "grads": grads,
                "samples": samples}

    def compare(self, inputs: dict, outputs: dict) -> None:
        mu, logvar, eps = inputs["mu"], inputs["logvar"], inputs["eps"]
        what = "reparameterize(mu, logvar, eps)"
        out = expect_tensor(outputs["out"], what, shape=mu.shape, dtype=mu.dtype, device=self.device)
        expect_finite(out, what)
        out = out.detach().cpu()
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
        if not outputs["differentiable"]:
            raise CheckFailed("the result does not depend differentiably on mu and logvar: compute it with torch operations "
                              "on the tensors you were given (no .detach(), .item() or torch.normal(...))")
        grads = outputs["grads"]
        if not isinstance(grads, dict) or grads.get("mu") is None or grads.get("logvar") is None:
            raise CheckFailed("no gradient reached mu or logvar through your z: build z from mu and logvar directly")
        expect_close(grads["logvar"], 0.5 * torch.exp(0.5 * logvar) * eps, "d(sum z)/d(logvar)", atol=1e-5, rtol=1e-4)
        # Statistically it is a draw from N(mu, sigma^2): compare with torch.distributions on many eps.
        samples = expect_tensor(outputs["samples"], what, shape=(20000, 1)).detach().cpu()
        ref = torch.distributions.Normal(torch.tensor([1.5]), torch.tensor([0.5]))
        if abs(float(samples.mean()) - float(ref.mean)) > 0.02 or abs(float(samples.std()) - float(ref.stddev)) > 0.02:
            raise CheckFailed(f"20,000 draws with mu=1.5, σ=0.5 have mean {float(samples.mean()):.3f} and std "
                              f"{float(samples.std()):.3f}, expected about 1.5 and 0.5")


@exercise("ex08_2", points=2, timeout=60)
class KLCheck:
    """``kl_to_standard_normal(mu, logvar)``: one KL value per row (summed over latent dims), equal to torch.distributions."""

    names = ("kl_to_standard_normal",)
    reference = ("tutorlib.generative.vae.kl_standard_normal",)
    hints = (
        "per latent dimension: KL = 0.5 * (mu² + σ² − 1 − log σ²) with σ² = exp(logvar).",
        "sum it over dim=1: one value per row, shape (B,).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"mu": 1.5 * torch.randn(7, 5, generator=gen), "logvar": torch.randn(7, 5, generator=gen)}

    def call(self, learner: Any, inputs: dict) -> dict:
        fn, dev = learner.function("kl_to_standard_normal"), learner.device
        out = learner.call(fn, inputs["mu"].to(dev), inputs["logvar"].to(dev), name="kl_to_standard_normal")
        zero = learner.call(fn, torch.zeros(3, 4, device=dev), torch.zeros(3, 4, device=dev), name="kl_to_standard_normal")
        return {"out": out, "zero": zero}

    def compare(self, inputs: dict, outputs: dict) -> None:
        mu, logvar = inputs["mu"], inputs["logvar"]
        what = "kl_to_standard_normal(mu, logvar) for mu, logvar of shape (7, 5)"
        out = outputs["out"]
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
        expect_tensor(out, what, shape=want.shape, dtype=mu.dtype, device=self.device)
        expect_finite(out, what)
        out = out.detach().cpu()
        hint = ""
        if torch.allclose(out, -want, atol=1e-4):
            hint = "the sign is flipped: KL = 0.5 * sum(mu² + σ² − 1 − log σ²) is never negative"
        elif torch.allclose(out, 2 * want, atol=1e-4):
            hint = "you forgot the factor 0.5"
        elif torch.allclose(out, 0.5 * (mu**2 + logvar - 1 - torch.log(logvar.abs() + 1e-12)).sum(1), atol=1e-4):
            hint = "logvar is log σ² already: σ² = exp(logvar)"
        expect_close(out, want, f"{what}, compared with torch.distributions.kl_divergence(Normal(mu, σ), Normal(0, 1)).sum(1)",
                     atol=1e-4, rtol=1e-4, hint=hint)
        zero = expect_tensor(outputs["zero"], "the KL of N(0, 1) to itself")
        expect_close(zero, torch.zeros(3), "the KL of N(0, 1) to itself", atol=1e-6, rtol=0)
        expect_close(out, kl_standard_normal(mu, logvar, "sum"), what, atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------- ex08_3: one GAN step


def _tiny_gan(states: tuple[dict, dict] | None = None, gen: torch.Generator | None = None) -> tuple[nn.Module, nn.Module]:
    with torch.random.fork_rng():
        G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 64), nn.Tanh(), nn.Unflatten(1, (1, 8, 8)))
        D = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1), nn.Flatten(0))
    with torch.no_grad():
        if states is not None:
            G.load_state_dict(states[0])
            D.load_state_dict(states[1])
        else:
            for p in list(G.parameters()) + list(D.parameters()):
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return G, D


def _adam(params: Any) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=2e-3, betas=(0.5, 0.999))


@exercise("ex08_3", points=3, timeout=60)
class GanStepCheck:
    """``gan_train_step(G, D, opt_g, opt_d, real, z)``: D step (real→1, detached fake→0), then G step (fake→1)."""

    names = ("gan_train_step",)
    hints = (
        "D step: opt_d.zero_grad(); d_loss = BCE(D(real), 1) + BCE(D(G(z).detach()), 0) with logits; backward; opt_d.step().",
        "G step: opt_g.zero_grad(); g_loss = BCE(D(G(z)), 1) through the updated D; backward; opt_g.step(); "
        "return (d_loss.item(), g_loss.item()).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        G, D = _tiny_gan(gen=gen)
        calls = [{"real": torch.randn(16, 1, 8, 8, generator=gen).tanh(), "z": torch.randn(16, 4, generator=gen)}
                 for _ in range(2)]
        return {"G": dict(G.state_dict()), "D": dict(D.state_dict()), "calls": calls}

    def call(self, learner: Any, inputs: dict) -> list:
        fn, dev = learner.function("gan_train_step"), learner.device
        G, D = (m.to(dev) for m in _tiny_gan((inputs["G"], inputs["D"])))
        opt_g, opt_d = _adam(G.parameters()), _adam(D.parameters())
        steps = []
        for c in inputs["calls"]:
            out = learner.call(fn, G, D, opt_g, opt_d, c["real"].to(dev), c["z"].to(dev), name="gan_train_step",
                               mutable=(0, 1, 2, 3))
            steps.append({"out": out, "G": [p.detach().clone() for p in G.parameters()],
                          "D": [p.detach().clone() for p in D.parameters()]})
        return steps

    def compare(self, inputs: dict, outputs: list) -> None:
        G_ref, D_ref = _tiny_gan((inputs["G"], inputs["D"]))
        ref_g, ref_d = _adam(G_ref.parameters()), _adam(D_ref.parameters())
        g_names = [n for n, _ in G_ref.named_parameters()]
        d_names = [n for n, _ in D_ref.named_parameters()]
        tol = {"atol": 1e-5, "rtol": 1e-4}
        for call, (c, step) in enumerate(zip(inputs["calls"], outputs), start=1):
            real, z = c["real"], c["z"]
            out = step["out"]
            g_before = [p.detach().clone() for p in G_ref.parameters()]
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
            if all(torch.equal(a, b.cpu()) for a, b in zip(g_before, step["G"])):
                raise CheckFailed("the generator's parameters did not change: after the discriminator step, compute "
                                  "g_loss, call g_loss.backward() and opt_g.step()")
            for name, p, r in zip(d_names, step["D"], D_ref.parameters()):
                expect_close(p, r.detach(), f"discriminator parameter {name} after call {call}", **tol,
                             hint="the D step is: opt_d.zero_grad(); d_loss with the fakes DETACHED "
                                  "(G(z).detach()); d_loss.backward(); opt_d.step() — and the G step must not "
                                  "update D (only opt_g.step())"
                                  + ("; on the second call leftover gradients from the G step reached D: call "
                                     "opt_d.zero_grad() at the start of the D step" if call == 2 else ""))
            expect_close(d_loss, want_d, f"d_loss of call {call}", **tol)
            for name, p, r in zip(g_names, step["G"], G_ref.parameters()):
                expect_close(p, r.detach(), f"generator parameter {name} after call {call}", **tol,
                             hint="the G step is: opt_g.zero_grad(); g_loss = BCE(D(G(z)), ones) (the non-saturating "
                                  "loss, through the UPDATED discriminator, not detached); g_loss.backward(); opt_g.step()")
            expect_close(g_loss, want_g, f"g_loss of call {call}", **tol,
                         hint="return g_loss = BCE(D(fake), 1) measured with the updated discriminator")


# --------------------------------------------------------------------------- ex08_4: slerp


@exercise("ex08_4", points=2, timeout=60)
class SlerpCheck:
    """``slerp(z0, z1, t)``: (T, D) points on the great circle from z0 to z1; endpoints exact; no NaN when parallel."""

    names = ("slerp",)
    reference = ("tutorlib.generative.widgets.slerp",)
    hints = (
        "Ω = the angle between z0 and z1: arccos of the dot product of the normalised vectors.",
        "z(t) = sin((1−t)Ω)/sin Ω · z0 + sin(tΩ)/sin Ω · z1; when sin Ω ≈ 0 use (1−t)·z0 + t·z1.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"z0": torch.randn(16, generator=gen), "z1": torch.randn(16, generator=gen), "t": torch.linspace(0, 1, 7)}

    def call(self, learner: Any, inputs: dict) -> dict:
        fn, dev = learner.function("slerp"), learner.device
        z0, z1, t = (inputs[k].to(dev) for k in ("z0", "z1", "t"))
        e1, e2 = torch.zeros(3, device=dev), torch.zeros(3, device=dev)
        e1[0], e2[1] = 1.0, 1.0
        return {"out": learner.call(fn, z0, z1, t, name="slerp"),
                "mid": learner.call(fn, e1, e2, torch.tensor([0.5], device=dev), name="slerp"),
                "parallel": learner.call(fn, z0, 2 * z0, t, name="slerp")}

    def compare(self, inputs: dict, outputs: dict) -> None:
        z0, z1, t = inputs["z0"], inputs["z1"], inputs["t"]
        what = "slerp(z0, z1, t) with 16-d z0, z1 and 7 values of t"
        want = reference_slerp(z0, z1, t)
        out = expect_tensor(outputs["out"], what, shape=want.shape, dtype=want.dtype, device=self.device)
        expect_finite(out, what)
        out = out.detach().cpu()
        lerp = (1 - t[:, None]) * z0 + t[:, None] * z1
        hint = ""
        if torch.allclose(out, lerp, atol=1e-4):
            hint = "that is linear interpolation: weight z0 by sin((1−t)Ω)/sin Ω and z1 by sin(tΩ)/sin Ω, Ω = angle between them"
        elif torch.allclose(out, torch.flip(want, [0]), atol=1e-4):
            hint = "the path runs backwards: t=0 must give z0 and t=1 must give z1"
        expect_close(out, want, what, atol=1e-4, rtol=1e-4, hint=hint)
        mid = expect_tensor(outputs["mid"], "slerp of two orthogonal unit vectors at t=0.5", shape=(1, 3))
        expect_close(mid, torch.tensor([[math.sqrt(0.5), math.sqrt(0.5), 0.0]]), "slerp of two orthogonal unit vectors at t=0.5",
                     atol=1e-4, rtol=1e-4, hint="the midpoint of a quarter circle stays on the unit circle")
        par = expect_tensor(outputs["parallel"], "slerp(z0, 2·z0, t) (parallel vectors)", shape=want.shape)
        expect_finite(par, "slerp(z0, 2·z0, t) (parallel vectors): sin Ω = 0 there, so fall back to linear interpolation;")
        expect_close(par, (1 - t[:, None]) * z0 + t[:, None] * 2 * z0, "slerp(z0, 2·z0, t) (parallel vectors)",
                     atol=1e-3, rtol=1e-3, hint="when sin Ω is (nearly) 0, return the straight line (1−t)·z0 + t·z1")


# --------------------------------------------------------------------------- ex08_5: Fréchet distance


def _features(gen: torch.Generator, n: int, d: int, shift: float, scale: float) -> torch.Tensor:
    mix = torch.randn(d, d, generator=gen) / math.sqrt(d)
    return (torch.randn(n, d, generator=gen) * scale) @ (torch.eye(d) + mix) + shift


def _maybe_complex(x: Any) -> Any:
    if isinstance(x, complex) or (isinstance(x, np.ndarray) and np.iscomplexobj(x)):
        return {"complex": True}
    return x


@exercise("ex08_5", points=2, timeout=60)
class FrechetCheck:
    """``frechet_distance(feats_a, feats_b)``: FD of Gaussians fitted to two (N, D) feature sets, as a float."""

    names = ("frechet_distance",)
    reference = ("tutorlib.generative.quality.frechet_distance_features", "tutorlib.generative.quality.frechet_distance")
    hints = (
        "fit a Gaussian to each set: means over rows, covariances with np.cov(features, rowvar=False).",
        "FD = ‖μ_a − μ_b‖² + tr(Σ_a) + tr(Σ_b) − 2·tr(sqrtm(Σ_a Σ_b)); keep the real part of sqrtm's result.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        a, b = _features(gen, 300, 6, 0.0, 1.0), _features(gen, 250, 6, 0.7, 1.6)
        big_a = torch.randn(4000, 3, generator=gen) * torch.tensor([1.0, 2.0, 0.5])
        big_b = torch.randn(4000, 3, generator=gen) * torch.tensor([2.0, 1.0, 0.5]) + torch.tensor([1.0, 0.0, 0.0])
        return {"a": a, "b": b, "big_a": big_a, "big_b": big_b}

    def call(self, learner: Any, inputs: dict) -> dict:
        fn = learner.function("frechet_distance")
        a, b = inputs["a"], inputs["b"]
        return {"got": _maybe_complex(learner.call(fn, a, b, name="frechet_distance")),
                "same": _maybe_complex(learner.call(fn, a, a.clone(), name="frechet_distance")),
                "big": _maybe_complex(learner.call(fn, inputs["big_a"], inputs["big_b"], name="frechet_distance"))}

    def compare(self, inputs: dict, outputs: dict) -> None:
        a, b = inputs["a"], inputs["b"]
        what = "frechet_distance(feats_a, feats_b) for two sets of 6-d features"
        got = outputs["got"]
        if isinstance(got, dict) and got.get("complex"):
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
        same = expect_number(outputs["same"], "frechet_distance(x, x)", float)
        if abs(same) > 1e-4:
            raise CheckFailed(f"frechet_distance(x, x) is {same:.3g}, expected 0 for identical feature sets")
        # Two independent Gaussians with diagonal covariances, whose distance has a closed form (about 3 here; the
        # samples' own distance is what is compared, so the check does not depend on sampling noise).
        closed = 1.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + 0.0
        value = expect_number(outputs["big"], "frechet_distance on two diagonal Gaussians", float)
        want = frechet_distance_features(inputs["big_a"], inputs["big_b"])
        if abs(value - want) > 1e-3 * max(1.0, abs(want)):
            raise CheckFailed(f"on 4,000 samples of N(0, diag(1, 4, 0.25)) and N((1, 0, 0), diag(4, 1, 0.25)) your distance is "
                              f"{value:.4f}, expected {want:.4f} (the closed form ‖Δμ‖² + Σ(σ_a − σ_b)² of the two "
                              f"distributions is {closed:.1f})")


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
