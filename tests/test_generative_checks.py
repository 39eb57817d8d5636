"""The lesson-08 exercise checks: right answers pass, typical mistakes fail with a message naming the mistake,
untouched stubs are 'not attempted', and the learner's random state is left alone."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from tutorlib.grading.registry import run_check


def reparameterize(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar) * eps


def kl_to_standard_normal(mu, logvar):
    return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1)


def _gan_step(G, D, opt_g, opt_d, real, z, detach=True, zero_d=True, g_target=1.0):
    fake = G(z)
    if zero_d:
        opt_d.zero_grad()
    r, f = D(real), D(fake.detach() if detach else fake)
    d = F.binary_cross_entropy_with_logits(r, torch.ones_like(r)) + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
    d.backward(retain_graph=not detach)
    opt_d.step()
    opt_g.zero_grad()
    logits = D(fake)
    g = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, g_target))
    g.backward()
    opt_g.step()
    return d.item(), g.item()


def gan_train_step(G, D, opt_g, opt_d, real, z):
    return _gan_step(G, D, opt_g, opt_d, real, z)


def slerp(z0, z1, t):
    t = t[:, None]
    om = torch.arccos((z0 @ z1 / (z0.norm() * z1.norm())).clamp(-1, 1))
    if torch.sin(om).abs() < 1e-6:
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * om) * z0 + torch.sin(t * om) * z1) / torch.sin(om)


def frechet_distance(a, b, ddof=1):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    sa, sb = np.cov(a, rowvar=False, ddof=ddof), np.cov(b, rowvar=False, ddof=ddof)
    cm = scipy.linalg.sqrtm(sa @ sb).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * np.trace(cm))


def _real_sweep():
    """A small real β sweep, as the exercise runs it (one ConvVAE(latent_dim=8) per β), measured on the val digits."""
    from tutorlib.data import load_digits
    from tutorlib.generative import ConvVAE, beta_sweep

    with torch.random.fork_rng():
        return beta_sweep([0.5, 1.0, 2.0, 4.0, 8.0], load_digits("train", limit=64), load_digits("val"),
                          lambda: ConvVAE(latent_dim=8), epochs=1, progress=False, log=False)


SWEEP = _real_sweep()
HAND_TYPED = [{"beta": b, "recon": r, "kl": k} for b, r, k in [(0.5, 20, 30), (1, 22, 25), (2, 24, 18), (4, 27, 10), (8, 40, 4)]]
RIGHT = {"reparameterize": reparameterize, "kl_to_standard_normal": kl_to_standard_normal,
         "gan_train_step": gan_train_step, "slerp": slerp, "frechet_distance": frechet_distance,
         "sweep": SWEEP, "chosen_beta": max(r["beta"] for r in SWEEP if r["recon"] <= 1.25 * min(r["recon"] for r in SWEEP))}


@pytest.mark.parametrize("ex", [f"ex08_{i}" for i in range(1, 7)])
def test_right_answers_pass_and_keep_the_rng(ex):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    result = run_check(ex, dict(RIGHT), device="cpu")
    assert result.status == "pass", result.message
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize("ex,name,wrong,expected", [
    ("ex08_1", "reparameterize", lambda mu, logvar, eps: mu + logvar.exp() * eps, "σ² = exp(logvar)"),
    ("ex08_1", "reparameterize", lambda mu, logvar, eps: mu + torch.exp(0.5 * logvar) * torch.randn_like(mu), "use the eps you were given"),
    ("ex08_1", "reparameterize", lambda mu, logvar, eps: (mu + torch.exp(0.5 * logvar) * eps).detach(), "differentiabl"),
    ("ex08_2", "kl_to_standard_normal", lambda mu, lv: -kl_to_standard_normal(mu, lv), "sign is flipped"),
    ("ex08_2", "kl_to_standard_normal", lambda mu, lv: 0.5 * (mu**2 + lv.exp() - 1 - lv), "shape (7, 5), expected (7,)"),
    ("ex08_2", "kl_to_standard_normal", lambda mu, lv: kl_to_standard_normal(mu, lv).mean(), "single number"),
    ("ex08_3", "gan_train_step", lambda *a: _gan_step(*a, zero_d=False), "zero_grad"),
    ("ex08_3", "gan_train_step", lambda *a: _gan_step(*a, g_target=0.0), "generator parameter"),
    ("ex08_3", "gan_train_step", lambda *a: 1.0, "pair (d_loss, g_loss)"),
    ("ex08_4", "slerp", lambda z0, z1, t: (1 - t[:, None]) * z0 + t[:, None] * z1, "linear interpolation"),
    ("ex08_4", "slerp", lambda z0, z1, t: slerp(z1, z0, t), "backwards"),
    ("ex08_5", "frechet_distance", lambda a, b: frechet_distance(a, b, ddof=0), "biased covariance"),
    ("ex08_5", "frechet_distance", lambda a, b: complex(frechet_distance(a, b)), "complex"),
])
def test_typical_mistakes_are_named(ex, name, wrong, expected):
    ns = dict(RIGHT)
    ns[name] = wrong
    result = run_check(ex, ns, device="cpu")
    assert result.status == "fail" and expected in result.message, result.message


def test_beta_choice_mistakes():
    best = min(SWEEP, key=lambda r: r["recon"])["beta"]
    wrong = best if best != RIGHT["chosen_beta"] else next(r["beta"] for r in SWEEP if r["beta"] != best)
    r = run_check("ex08_6", dict(RIGHT, chosen_beta=wrong), device="cpu")
    assert r.status == "fail" and f"chosen_beta is {wrong:g}" in r.message
    if wrong == best:
        assert "LARGEST" in r.message
    r = run_check("ex08_6", dict(RIGHT, sweep=SWEEP[1:4]), device="cpu")
    assert r.status == "fail" and "at least 4" in r.message
    r = run_check("ex08_6", dict(RIGHT, sweep=[dict(s, recon=float("nan")) for s in SWEEP]), device="cpu")
    assert r.status == "fail" and "finite" in r.message


def test_a_made_up_sweep_fails():
    # Issue 22: a hand-typed sweep used to pass; its numbers must now come from its own trained models.
    r = run_check("ex08_6", dict(RIGHT, sweep=HAND_TYPED, chosen_beta=2.0), device="cpu")
    assert r.status == "fail" and "no trained 'model'" in r.message
    edited = [dict(s) for s in SWEEP]
    edited[2]["recon"] *= 0.8  # a real run with one number "improved" by hand
    r = run_check("ex08_6", dict(RIGHT, sweep=edited), device="cpu")
    assert r.status == "fail" and "its own model measures" in r.message
    swapped = [dict(s) for s in SWEEP]
    swapped[0]["model"], swapped[-1]["model"] = swapped[-1]["model"], swapped[0]["model"]
    r = run_check("ex08_6", dict(RIGHT, sweep=swapped), device="cpu")
    assert r.status == "fail" and "its own model measures" in r.message
    r = run_check("ex08_6", dict(RIGHT, sweep=[dict(s, model=torch.nn.Linear(2, 2)) for s in SWEEP]), device="cpu")
    assert r.status == "fail" and "is not a ConvVAE(latent_dim=8)" in r.message


def test_stubs_are_not_attempted_and_missing_names_are_reported():
    def stub(*args):
        raise NotImplementedError("ex08_1: write your answer here")

    assert run_check("ex08_1", {"reparameterize": stub}, device="cpu").status == "not_attempted"
    r = run_check("ex08_3", {}, device="cpu")
    assert r.status == "fail" and "`gan_train_step` is not defined" in r.message
