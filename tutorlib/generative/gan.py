"""DCGAN (Radford et al., 2016) and its stabilising tricks, trained on the shared Trainer with a manual step.

* :class:`DCGANGenerator`: z (and an optional condition vector) → 4×4 by a transposed conv, then
  stride-2 transposed convs with BatchNorm + ReLU up to the image size, a 3×3 conv and tanh.
* :class:`DCGANDiscriminator`: stride-2 convs with LeakyReLU(0.2) (BatchNorm after the first), a
  linear real/fake logit and, when conditioned, a projection term ⟨embed(c), h⟩ (Miyato & Koyama, 2018).
  ``spectral_norm=True`` wraps every layer in spectral normalisation (Miyato et al., 2018) and drops BatchNorm.
* :func:`dcgan_init`: weights N(0, 0.02), BatchNorm scales N(1, 0.02), as in the DCGAN paper.
* :func:`make_optimizers`: Adam(lr=2e-4, betas=(0.5, 0.999)) for both nets; different ``lr_g``/``lr_d``
  give two-timescale updates (TTUR, Heusel et al., 2017).
* :class:`GANStep`: a ``step_fn`` for ``Trainer(manual_optimization=True)`` that does one discriminator
  step then one generator step with ``trainer.backward`` / ``trainer.optimizer_step``, with one-sided label
  smoothing, extra D/G steps, and the saturating or non-saturating generator loss.

Images live in [0, 1] outside the GAN (like the datasets) and in [-1, 1] inside it (tanh output).

>>> from tutorlib.data import load_digits
>>> gan = GAN(latent_dim=16, channels=1, img_size=8, width=16)
>>> run = train_gan(gan, load_digits("train", limit=128), epochs=1, progress=False, log=False)
>>> sorted(run.log[-1])[:3]
['d_fake', 'd_loss', 'd_real']
>>> gan.sample(4).shape
torch.Size([4, 1, 8, 8])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from tutorlib.generative._images import check_img_size, check_images, images_of, labels_of
from tutorlib.runtime import get_device
from tutorlib.train import Callback, History, Trainer

__all__ = [
    "DCGANGenerator",
    "DCGANDiscriminator",
    "GAN",
    "dcgan_init",
    "make_optimizers",
    "GANStep",
    "GANRun",
    "train_gan",
    "GEN_LOSSES",
]

GEN_LOSSES = ("nonsaturating", "saturating")


def dcgan_init(module: nn.Module, std: float = 0.02) -> None:
    """The DCGAN paper's initialisation, applied in place to every sub-module of ``module``.

    Conv, transposed-conv and linear weights ~ N(0, ``std``), BatchNorm scale ~ N(1, ``std``), biases 0.

    >>> net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8)); dcgan_init(net)
    >>> abs(float(net[0].weight.std()) - 0.02) < 0.01
    True
    """
    if std <= 0:
        raise ValueError(f"std must be positive, got {std}")
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            # Under spectral_norm the trainable tensor is weight_orig (weight is recomputed from it).
            weight = getattr(getattr(m, "parametrizations", None), "weight", None)
            target = weight.original if weight is not None else m.weight
            nn.init.normal_(target, 0.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """Transposed-conv generator: (B, latent_dim) [+ (B, cond_dim)] → (B, channels, img_size, img_size) in [-1, 1].

    >>> g = DCGANGenerator(latent_dim=8, channels=3, img_size=32, width=8, cond_dim=5)
    >>> g(torch.randn(2, 8), torch.randn(2, 5)).shape
    torch.Size([2, 3, 32, 32])
    """

    def __init__(self, latent_dim: int = 32, channels: int = 1, img_size: int = 8, width: int = 32,
                 cond_dim: int = 0) -> None:
        super().__init__()
        if latent_dim <= 0 or channels <= 0 or width <= 0 or cond_dim < 0:
            raise ValueError(f"latent_dim, channels and width must be positive and cond_dim ≥ 0, got "
                             f"{latent_dim}, {channels}, {width}, {cond_dim}")
        n_up = check_img_size(img_size)
        self.latent_dim, self.channels, self.img_size, self.cond_dim = latent_dim, channels, img_size, cond_dim
        ch = width * 2**n_up
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim + cond_dim, ch, 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(n_up):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.Conv2d(ch, channels, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected z of shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        if self.cond_dim:
            if cond is None or cond.dim() != 2 or cond.shape != (z.shape[0], self.cond_dim):
                got = None if cond is None else tuple(cond.shape)
                raise ValueError(f"this generator is conditional: pass cond of shape ({z.shape[0]}, {self.cond_dim}), got {got}")
            z = torch.cat([z, cond.to(z.dtype)], dim=1)
        elif cond is not None:
            raise ValueError("this generator is unconditional (cond_dim=0) but a cond was passed")
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """Conv discriminator: (B, channels, H, W) [+ cond (B, cond_dim)] → real/fake logits (B,).

    ``spectral_norm=True`` normalises every layer's largest singular value to 1 (and uses no
    BatchNorm); ``minibatch_std=True`` appends the batch's feature standard deviation as one more
    channel, which lets the discriminator see a collapsed (too uniform) batch.

    >>> d = DCGANDiscriminator(channels=1, img_size=8, width=8, spectral_norm=True)
    >>> d(torch.rand(3, 1, 8, 8)).shape
    torch.Size([3])
    """

    def __init__(self, channels: int = 1, img_size: int = 8, width: int = 32, cond_dim: int = 0,
                 spectral_norm: bool = False, minibatch_std: bool = False) -> None:
        super().__init__()
        if channels <= 0 or width <= 0 or cond_dim < 0:
            raise ValueError(f"channels and width must be positive and cond_dim ≥ 0, got {channels}, {width}, {cond_dim}")
        n_down = check_img_size(img_size)
        self.channels, self.img_size, self.cond_dim = channels, img_size, cond_dim
        self.spectral_norm, self.minibatch_std = spectral_norm, minibatch_std
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        layers: list[nn.Module] = [sn(nn.Conv2d(channels, width, 3, 1, 1)), nn.LeakyReLU(0.2, True)]
        ch = width
        for i in range(n_down):
            layers.append(sn(nn.Conv2d(ch, 2 * ch, 4, 2, 1, bias=spectral_norm)))
            if not spectral_norm:
                layers.append(nn.BatchNorm2d(2 * ch))
            layers.append(nn.LeakyReLU(0.2, True))
            ch *= 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        feat = ch * 16 + (1 if minibatch_std else 0)
        self.head = sn(nn.Linear(feat, 1))
        self.embed = sn(nn.Linear(cond_dim, feat, bias=False)) if cond_dim else None
        dcgan_init(self)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        check_images(x, "the discriminator's input")
        if tuple(x.shape[1:]) != (self.channels, self.img_size, self.img_size):
            raise ValueError(f"expected images (B, {self.channels}, {self.img_size}, {self.img_size}), got {tuple(x.shape)}")
        h = self.features(x)
        if self.minibatch_std:
            std = h.std(dim=0, unbiased=False).mean() if len(h) > 1 else h.new_zeros(())
            h = torch.cat([h, std.expand(len(h), 1)], dim=1)
        out = self.head(h).squeeze(1)
        if self.embed is not None:
            if cond is None or cond.shape != (len(x), self.cond_dim):
                got = None if cond is None else tuple(cond.shape)
                raise ValueError(f"this discriminator is conditional: pass cond of shape ({len(x)}, {self.cond_dim}), got {got}")
            out = out + (self.embed(cond.to(h.dtype)) * h).sum(1)
        elif cond is not None:
            raise ValueError("this discriminator is unconditional (cond_dim=0) but a cond was passed")
        return out


class GAN(nn.Module):
    """A generator and a discriminator in one module, so the Trainer moves and checkpoints both.

    ``num_classes > 0`` makes a class-conditional GAN (the condition is the one-hot label);
    ``cond_dim > 0`` conditions on a float vector each batch provides (e.g. a caption embedding).

    >>> gan = GAN(latent_dim=8, channels=1, img_size=8, width=8, num_classes=10)
    >>> gan.sample(3, labels=torch.tensor([0, 1, 2])).shape
    torch.Size([3, 1, 8, 8])
    """

    def __init__(self, latent_dim: int = 32, channels: int = 1, img_size: int = 8, width: int = 32,
                 num_classes: int = 0, cond_dim: int = 0, d_width: int | None = None, spectral_norm: bool = False,
                 minibatch_std: bool = False) -> None:
        super().__init__()
        if num_classes < 0 or cond_dim < 0:
            raise ValueError(f"num_classes and cond_dim must be ≥ 0, got {num_classes} and {cond_dim}")
        if num_classes and cond_dim:
            raise ValueError("pass num_classes (labels) or cond_dim (condition vectors), not both")
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.cond_size = num_classes or cond_dim
        self.generator = DCGANGenerator(latent_dim, channels, img_size, width, self.cond_size)
        self.discriminator = DCGANDiscriminator(channels, img_size, d_width or width, self.cond_size,
                                                spectral_norm=spectral_norm, minibatch_std=minibatch_std)

    def condition(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """The condition vector for labels or vectors ``y`` (one-hot for class labels; ``None`` if unconditional).

        >>> GAN(width=8, num_classes=3).condition(torch.tensor([2])).tolist()
        [[0.0, 0.0, 1.0]]
        """
        if not self.cond_size:
            return None
        if y is None:
            raise ValueError("this GAN is conditional: the batches must be (images, labels) or (images, cond vectors)")
        if self.num_classes:
            if y.dtype not in (torch.int64, torch.int32) or y.dim() != 1:
                raise TypeError(f"class labels must be an int tensor (B,), got {y.dtype} {tuple(y.shape)}")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise ValueError(f"labels must lie in [0, {self.num_classes}), got {int(y.min())}..{int(y.max())}")
            return F.one_hot(y.long(), self.num_classes).float()
        return y.float()

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Generated images in [-1, 1] for latent codes ``z`` (and labels/condition vectors ``y``)."""
        return self.generator(z, self.condition(y))

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, cond: torch.Tensor | None = None,
               generator: torch.Generator | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` generated images in [0, 1] (generator in eval mode: BatchNorm uses running statistics).

        >>> GAN(latent_dim=4, width=8).sample(2, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 1, 8, 8])
        """
        if n <= 0:
            raise ValueError(f"n must be positive, got {n}")
        dev = next(self.parameters()).device
        if z is None:
            z = torch.randn(n, self.latent_dim, generator=generator)
        z = z.to(dev)
        y = labels if labels is not None else cond
        if y is not None:
            y = y.to(dev)
            if len(y) != n:
                raise ValueError(f"got {len(y)} labels/conditions for {n} samples")
        was = self.generator.training
        self.generator.eval()
        try:
            return (self(z, y).float() + 1) / 2
        finally:
            self.generator.train(was)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] for latent codes ``z`` (unconditional GANs; used by the latent widgets).

        >>> GAN(latent_dim=4, width=8).decode(torch.zeros(2, 4)).shape
        torch.Size([2, 1, 8, 8])
        """
        return self.sample(len(z), z=z)


def make_optimizers(gan: GAN, lr_g: float = 2e-4, lr_d: float = 2e-4,
                    betas: tuple[float, float] = (0.5, 0.999)) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for the generator and for the discriminator, with the DCGAN paper's settings by default.

    >>> opt_g, opt_d = make_optimizers(GAN(width=8), lr_d=4e-4); opt_d.param_groups[0]["lr"]
    0.0004
    """
    if lr_g <= 0 or lr_d <= 0:
        raise ValueError(f"learning rates must be positive, got lr_g={lr_g}, lr_d={lr_d}")
    return (torch.optim.Adam(gan.generator.parameters(), lr=lr_g, betas=betas),
            torch.optim.Adam(gan.discriminator.parameters(), lr=lr_d, betas=betas))


class GANStep:
    """``step_fn`` for ``Trainer(gan, manual_optimization=True, step_fn=GANStep(opt_g, opt_d))``.

    One call = ``d_steps`` discriminator updates on a real batch and fresh fakes (real target
    ``1 - label_smoothing``, fake target 0), then ``g_steps`` generator updates through the frozen
    discriminator. ``gen_loss="nonsaturating"`` minimises −log D(G(z)) (the DCGAN choice);
    ``"saturating"`` minimises log(1 − D(G(z))), the original minimax loss whose gradient vanishes
    when D wins. Every step appends ``d_loss``, ``g_loss``, ``g_fool`` (−log D(G(z)) on the generator
    step's fakes, comparable across both generator losses), ``d_real`` and ``d_fake`` (mean D
    probabilities) to :attr:`log`.

    >>> gan = GAN(latent_dim=8, width=8); step = GANStep(*make_optimizers(gan), label_smoothing=0.1)
    >>> t = Trainer(gan, manual_optimization=True, step_fn=step, progress=False, log=False)
    >>> sorted(t.compute((torch.rand(8, 1, 8, 8), torch.zeros(8, dtype=torch.long))))
    ['d_loss', 'g_loss', 'loss']
    """

    def __init__(self, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, label_smoothing: float = 0.0,
                 d_steps: int = 1, g_steps: int = 1, gen_loss: str = "nonsaturating") -> None:
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing} (0.1 is a common choice)")
        if d_steps < 1 or g_steps < 1:
            raise ValueError(f"d_steps and g_steps must be at least 1, got {d_steps} and {g_steps}")
        if gen_loss not in GEN_LOSSES:
            raise ValueError(f"gen_loss must be one of {GEN_LOSSES}, got {gen_loss!r}")
        self.opt_g, self.opt_d = opt_g, opt_d
        self.label_smoothing, self.d_steps, self.g_steps, self.gen_loss = label_smoothing, d_steps, g_steps, gen_loss
        self.log: list[dict[str, float]] = []

    def __call__(self, trainer: Trainer, batch: Any) -> dict:
        gan = trainer.unwrapped_model
        if not isinstance(gan, GAN):
            raise TypeError(f"GANStep trains a tutorlib.generative.GAN, got {type(gan).__name__}")
        real = images_of(batch) * 2 - 1
        y = labels_of(batch)
        cond = gan.condition(y)
        G, D = gan.generator, gan.discriminator
        if not torch.is_grad_enabled():  # Trainer.evaluate: report the losses without updating
            return self._losses(gan, real, cond)
        n = len(real)
        dev = real.device
        d_loss = g_loss = torch.zeros((), device=dev)
        d_real = d_fake = fool = 0.0
        D.requires_grad_(True)
        for _ in range(self.d_steps):
            self.opt_d.zero_grad(set_to_none=True)
            z = torch.randn(n, gan.latent_dim, device=dev)
            with torch.no_grad():
                fake = G(z, cond)
            real_logits, fake_logits = D(real, cond), D(fake, cond)
            target_real = torch.full_like(real_logits, 1.0 - self.label_smoothing)
            d_loss = (F.binary_cross_entropy_with_logits(real_logits, target_real)
                      + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
            trainer.backward(d_loss)
            trainer.optimizer_step(self.opt_d)
            d_real = float(torch.sigmoid(real_logits.detach()).mean())
            d_fake = float(torch.sigmoid(fake_logits.detach()).mean())
        D.requires_grad_(False)  # the generator step only needs gradients with respect to G
        try:
            for _ in range(self.g_steps):
                self.opt_g.zero_grad(set_to_none=True)
                z = torch.randn(n, gan.latent_dim, device=dev)
                logits = D(G(z, cond), cond)
                if self.gen_loss == "nonsaturating":
                    g_loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
                else:  # minimise log(1 - D(G(z))) = -BCE(logits, 0)
                    g_loss = -F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
                trainer.backward(g_loss)
                trainer.optimizer_step(self.opt_g)
                fool = float(F.softplus(-logits.detach()).mean())  # −log D(G(z)), whatever loss G minimises
        finally:
            D.requires_grad_(True)
        self.log.append({"step": len(self.log) + 1, "d_loss": float(d_loss.detach()), "g_loss": float(g_loss.detach()),
                         "g_fool": fool, "d_real": d_real, "d_fake": d_fake})
        return {"loss": (d_loss + g_loss).detach(), "d_loss": d_loss.detach(), "g_loss": g_loss.detach()}

    def _losses(self, gan: GAN, real: torch.Tensor, cond: torch.Tensor | None) -> dict:
        z = torch.randn(len(real), gan.latent_dim, device=real.device)
        real_logits = gan.discriminator(real, cond)
        fake_logits = gan.discriminator(gan.generator(z, cond), cond)
        d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        g_loss = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        return {"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss}


@dataclass
class GANRun:
    """What :func:`train_gan` returns: the Trainer's History and the per-step GAN log.

    >>> GANRun(History(), [{"d_loss": 0.7}]).series("d_loss")
    [0.7]
    """

    history: History
    log: list[dict[str, float]] = field(default_factory=list)

    def series(self, key: str) -> list[float]:
        """One logged quantity (``d_loss``, ``g_loss``, ``g_fool``, ``d_real``, ``d_fake``) over steps.

        >>> GANRun(History(), [{"d_loss": 1.0}, {"d_loss": 0.5}]).series("d_loss")
        [1.0, 0.5]
        """
        if self.log and key not in self.log[0]:
            raise KeyError(f"no {key!r} in the GAN log; available: {sorted(self.log[0])}")
        return [row[key] for row in self.log]

    def tail_mean(self, key: str, fraction: float = 0.2) -> float:
        """Mean of ``key`` over the last ``fraction`` of the steps (a steadier summary than the last value).

        >>> GANRun(History(), [{"g_loss": v} for v in (4.0, 2.0, 1.0, 3.0, 5.0)]).tail_mean("g_loss", 0.4)
        4.0
        """
        values = self.series(key)
        if not values:
            raise ValueError("the GAN log is empty: train first")
        k = max(1, int(round(len(values) * fraction)))
        return sum(values[-k:]) / k


def train_gan(gan: GAN, data: Dataset | DataLoader, epochs: int = 20, *, lr_g: float = 2e-4, lr_d: float = 2e-4,
              betas: tuple[float, float] = (0.5, 0.999), label_smoothing: float = 0.0, d_steps: int = 1,
              g_steps: int = 1, gen_loss: str = "nonsaturating", batch_size: int = 64,
              device: str | torch.device | None = None, callbacks: Sequence[Callback] = (),
              **trainer_kwargs: Any) -> GANRun:
    """Train ``gan`` with the shared Trainer (``manual_optimization=True`` and a :class:`GANStep`).

    ``data`` yields images, ``(images, labels)`` for a class-conditional GAN, or ``(images, cond)``
    for a vector-conditioned one; images in [0, 1].

    >>> from tutorlib.data import load_digits
    >>> run = train_gan(GAN(width=8), load_digits("train", limit=64), epochs=1, progress=False, log=False)
    >>> len(run.log)
    1
    """
    if not isinstance(gan, GAN):
        raise TypeError(f"gan must be a tutorlib.generative.GAN, got {type(gan).__name__}")
    gan.to(get_device(device))  # move before building the optimizers so they hold the device's tensors
    opt_g, opt_d = make_optimizers(gan, lr_g, lr_d, betas)
    step = GANStep(opt_g, opt_d, label_smoothing, d_steps, g_steps, gen_loss)
    trainer = Trainer(gan, manual_optimization=True, step_fn=step, batch_size=batch_size, device=device,
                      callbacks=callbacks, **trainer_kwargs)
    history = trainer.fit(data, epochs=epochs)
    return GANRun(history, step.log)
