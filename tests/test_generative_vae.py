"""Tests of tutorlib.generative.vae: the reparameterization trick and KL against torch.distributions, the
reconstruction term, the conv VAE's shapes and errors, and that training on the digits lowers the loss."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence
from torch.nn import functional as F

from tutorlib.data import ShapesDataset, load_digits
from tutorlib.generative.vae import (ConvVAE, beta_sweep, elbo_terms, encode_dataset, evaluate_vae,
                                     kl_standard_normal, latent_traversal, recon_loss, reparameterize, train_vae,
                                     vae_step_fn)
from tutorlib.train import Trainer


def test_reparameterize_is_normal_rsample_with_same_noise_and_gradients():
    mu = torch.randn(5, 3, requires_grad=True)
    logvar = torch.randn(5, 3, requires_grad=True)
    torch.manual_seed(7)
    ours = reparameterize(mu, logvar)
    mu2, logvar2 = mu.detach().clone().requires_grad_(), logvar.detach().clone().requires_grad_()
    torch.manual_seed(7)
    ref = Normal(mu2, torch.exp(0.5 * logvar2)).rsample()
    assert torch.equal(ours, ref)
    (ours ** 2).sum().backward()
    (ref ** 2).sum().backward()
    assert torch.allclose(mu.grad, mu2.grad) and torch.allclose(logvar.grad, logvar2.grad)


def test_reparameterize_explicit_eps_and_generator():
    mu, logvar, eps = torch.zeros(2, 2), torch.log(torch.full((2, 2), 4.0)), torch.ones(2, 2)
    assert torch.allclose(reparameterize(mu, logvar, eps), torch.full((2, 2), 2.0))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(reparameterize(mu, logvar, generator=g1), reparameterize(mu, logvar, generator=g2))


def test_kl_matches_torch_distributions():
    mu, logvar = 2 * torch.randn(6, 4), torch.randn(6, 4)
    ref = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu)))
    assert torch.allclose(kl_standard_normal(mu, logvar, "none"), ref, atol=1e-5)
    assert torch.allclose(kl_standard_normal(mu, logvar), ref.sum(1), atol=1e-5)
    assert torch.allclose(kl_standard_normal(mu, logvar, "mean"), ref.sum(1).mean(), atol=1e-5)
    assert float(kl_standard_normal(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max()) == 0.0


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="same shape"):
        kl_standard_normal(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="reduction"):
        kl_standard_normal(torch.zeros(2, 3), torch.zeros(2, 3), "avg")
    with pytest.raises(ValueError, match="eps"):
        reparameterize(torch.zeros(2, 3), torch.zeros(2, 3), eps=torch.zeros(3))
    with pytest.raises(ValueError, match="power of two"):
        ConvVAE(img_size=12)
    with pytest.raises(ValueError, match=r"unsqueeze"):
        ConvVAE()(torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\)"):
        ConvVAE()(torch.zeros(4, 3, 8, 8))
    with pytest.raises(ValueError, match="likelihood"):
        vae_step_fn(likelihood="poisson")


def test_recon_loss_is_the_bernoulli_and_gaussian_nll():
    logits = torch.randn(3, 1, 8, 8)
    x = (torch.rand(3, 1, 8, 8) > 0.5).float()
    ref = -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(recon_loss(logits, x), ref, atol=1e-4)
    xc = torch.rand(3, 1, 8, 8)
    gauss = ((torch.sigmoid(logits) - xc) ** 2 / (2 * 0.1**2)).flatten(1).sum(1)
    assert torch.allclose(recon_loss(logits, xc, "gaussian", sigma=0.1), gauss, atol=1e-4)
    assert torch.allclose(recon_loss(logits, xc), F.binary_cross_entropy_with_logits(logits, xc, reduction="none").flatten(1).sum(1))


@pytest.mark.parametrize("channels,size", [(1, 8), (1, 16), (3, 32)])
def test_conv_vae_shapes(channels, size):
    vae = ConvVAE(in_channels=channels, img_size=size, latent_dim=5)
    out = vae(torch.rand(2, channels, size, size))
    assert out.logits.shape == (2, channels, size, size)
    assert out.mu.shape == out.logvar.shape == out.z.shape == (2, 5)
    assert vae.sample(3).shape == (3, channels, size, size)
    assert 0.0 <= float(vae.sample(3).min()) and float(vae.sample(3).max()) <= 1.0


def test_eval_mode_uses_the_posterior_mean():
    vae = ConvVAE(latent_dim=3).eval()
    out = vae(torch.rand(4, 1, 8, 8))
    assert torch.equal(out.z, out.mu)


def test_training_lowers_the_negative_elbo_on_digits():
    torch.manual_seed(0)
    vae = ConvVAE(latent_dim=4)
    val = load_digits("val", limit=128)
    before = evaluate_vae(vae, val)
    history = train_vae(vae, load_digits("train", limit=512), epochs=4, progress=False, log=False)
    after = evaluate_vae(vae, val)
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert after["elbo"] > before["elbo"] + 5  # nats per image
    assert len(after["kl_per_dim"]) == 4 and 0 <= after["active_dims"] <= 4


def test_large_beta_buys_a_smaller_kl():
    rows = beta_sweep([0.2, 8.0], load_digits("train", limit=384), load_digits("val", limit=128),
                      lambda: ConvVAE(latent_dim=4), epochs=3, progress=False, log=False)
    low, high = rows
    assert high["kl"] < low["kl"]
    assert high["recon"] > low["recon"]
    assert isinstance(low["model"], ConvVAE)


def test_step_fn_plugs_into_the_trainer_and_accepts_shapes_dicts():
    vae = ConvVAE(in_channels=3, img_size=32, latent_dim=4)
    trainer = Trainer(vae, step_fn=vae_step_fn(beta=2.0), progress=False, log=False)
    batch = torch.utils.data.default_collate([ShapesDataset(4)[i] for i in range(4)])
    out = trainer.compute(batch)
    terms = elbo_terms(vae.eval(), batch["image"], beta=2.0)
    assert torch.isfinite(out["loss"]) and set(terms) == {"loss", "recon", "kl"}
    assert torch.allclose(terms["loss"], terms["recon"] + 2.0 * terms["kl"])


def test_encode_dataset_and_traversal():
    vae = ConvVAE(latent_dim=3)
    mu, y = encode_dataset(vae, load_digits("val", limit=20))
    assert mu.shape == (20, 3) and y.shape == (20,)
    imgs = latent_traversal(vae, dims=[1], values=[-2.0, 0.0, 2.0])
    assert imgs.shape == (3, 1, 8, 8)
    assert not torch.allclose(imgs[0], imgs[2])
    with pytest.raises(ValueError, match="out of range"):
        latent_traversal(vae, dims=[5])
