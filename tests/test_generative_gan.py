"""Tests of tutorlib.generative.gan: DCGAN initialisation and shapes, spectral norm, conditioning, and that
GANStep on the shared Trainer does exactly one D step then one G step (checked against a hand-written step)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from tutorlib.data import load_digits
from tutorlib.generative.gan import (GAN, DCGANDiscriminator, DCGANGenerator, GANStep, dcgan_init, make_optimizers,
                                     train_gan)
from tutorlib.train import Trainer


def test_dcgan_init_and_adam_settings():
    gan = GAN(latent_dim=16, width=32)
    convs = [m for m in gan.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    w = torch.cat([m.weight.flatten() for m in convs])
    assert abs(float(w.std()) - 0.02) < 0.003 and abs(float(w.mean())) < 0.003
    bns = [m for m in gan.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert abs(float(torch.cat([b.weight for b in bns]).mean()) - 1.0) < 0.01
    opt_g, opt_d = make_optimizers(gan)
    for opt in (opt_g, opt_d):
        assert opt.param_groups[0]["lr"] == 2e-4 and opt.param_groups[0]["betas"] == (0.5, 0.999)


@pytest.mark.parametrize("channels,size", [(1, 8), (1, 16), (3, 32)])
def test_shapes(channels, size):
    g = DCGANGenerator(latent_dim=8, channels=channels, img_size=size, width=8)
    d = DCGANDiscriminator(channels=channels, img_size=size, width=8)
    x = g(torch.randn(4, 8))
    assert x.shape == (4, channels, size, size) and float(x.abs().max()) <= 1.0
    assert d(x).shape == (4,)


def test_conditioning_and_errors():
    gan = GAN(latent_dim=8, width=8, num_classes=10)
    labels = torch.tensor([0, 3, 9])
    assert gan.sample(3, labels=labels).shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match="conditional"):
        gan.generator(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        gan.condition(torch.tensor([10]))
    with pytest.raises(ValueError, match="not both"):
        GAN(num_classes=10, cond_dim=4)
    with pytest.raises(ValueError, match="label_smoothing"):
        GANStep(*make_optimizers(GAN(width=8)), label_smoothing=0.7)
    with pytest.raises(ValueError, match=r"\(B, 8\)"):
        GAN(latent_dim=8, width=8).generator(torch.randn(2, 5))
    # Different labels give different images for the same z.
    z = torch.randn(1, 8).repeat(2, 1)
    imgs = gan.sample(2, labels=torch.tensor([1, 7]), z=z)
    assert not torch.allclose(imgs[0], imgs[1])


def test_spectral_norm_bounds_every_layer():
    d = DCGANDiscriminator(channels=1, img_size=8, width=8, spectral_norm=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    for _ in range(30):  # power iterations run in training-mode forward passes
        d(torch.rand(4, 1, 8, 8))
    for m in d.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
            assert abs(float(sigma) - 1.0) < 0.05


def test_gan_step_is_one_d_step_then_one_g_step():
    torch.manual_seed(0)
    gan = GAN(latent_dim=8, width=8)
    ref = copy.deepcopy(gan)
    opt_g, opt_d = make_optimizers(gan, lr_g=1e-3, lr_d=2e-3)
    ref_g, ref_d = make_optimizers(ref, lr_g=1e-3, lr_d=2e-3)
    step = GANStep(opt_g, opt_d, label_smoothing=0.1)
    trainer = Trainer(gan, manual_optimization=True, step_fn=step, progress=False, log=False)
    real01 = torch.rand(16, 1, 8, 8)
    torch.manual_seed(42)
    out = trainer.compute((real01, torch.zeros(16, dtype=torch.long)))

    # The same step written out by hand.
    torch.manual_seed(42)
    real = real01 * 2 - 1
    G, D = ref.generator, ref.discriminator
    z = torch.randn(16, 8)
    with torch.no_grad():
        fake = G(z)
    r, f = D(real), D(fake)
    d_loss = F.binary_cross_entropy_with_logits(r, torch.full_like(r, 0.9)) + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
    ref_d.zero_grad()
    d_loss.backward()
    ref_d.step()
    z = torch.randn(16, 8)
    logits = D(G(z))
    g_loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    ref_g.zero_grad()
    g_loss.backward()
    ref_g.step()

    assert torch.allclose(out["d_loss"], d_loss.detach(), atol=1e-6)
    assert torch.allclose(out["g_loss"], g_loss.detach(), atol=1e-6)
    for (name, p), q in zip(gan.named_parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=1e-6), name
    assert all(p.requires_grad for p in gan.discriminator.parameters())
    assert len(step.log) == 1 and 0 < step.log[0]["d_real"] < 1


def test_saturating_loss_is_negative_and_extra_d_steps_run():
    gan = GAN(latent_dim=8, width=8)
    step = GANStep(*make_optimizers(gan), gen_loss="saturating", d_steps=3)
    trainer = Trainer(gan, manual_optimization=True, step_fn=step, progress=False, log=False)
    out = trainer.compute(torch.rand(8, 1, 8, 8))
    assert float(out["g_loss"]) < 0


def test_train_gan_on_digits_moves_towards_the_data():
    torch.manual_seed(0)
    data = load_digits("train", limit=512)
    gan = GAN(latent_dim=16, width=16)
    before = gan.sample(256, generator=torch.Generator().manual_seed(0))
    run = train_gan(gan, data, epochs=6, progress=False, log=False)
    after = gan.sample(256, generator=torch.Generator().manual_seed(0))
    real_mean = data.tensors[0].mean(0)
    # The average generated image gets closer to the average digit.
    assert (after.mean(0) - real_mean).abs().mean() < (before.mean(0) - real_mean).abs().mean()
    assert len(run.log) == 6 * 8 and len(run.history.steps) == 48
    assert all(torch.isfinite(torch.tensor(run.series("d_loss"))))
    assert run.tail_mean("d_loss") > 0 and run.tail_mean("g_fool") > 0


def test_class_conditional_training_runs():
    gan = GAN(latent_dim=8, width=8, num_classes=10, spectral_norm=True, minibatch_std=True)
    run = train_gan(gan, load_digits("train", limit=128), epochs=1, label_smoothing=0.1, progress=False, log=False)
    assert len(run.log) == 2
