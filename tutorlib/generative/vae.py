"""Variational auto-encoders: a conv encoder to (μ, log σ²), the reparameterization trick, a conv decoder, and the
(β-)ELBO as a ``step_fn`` for the shared :class:`~tutorlib.train.Trainer`.

The loss per image is ``reconstruction + β · KL(q(z|x) ‖ N(0, I))`` in nats: β = 1 is the ELBO of
Kingma & Welling (2014); β > 1 is the β-VAE of Higgins et al. (2017), which trades reconstruction
for a simpler, more factorised latent code.

>>> import torch
>>> from tutorlib.data import load_digits
>>> model = ConvVAE(in_channels=1, img_size=8, latent_dim=2)
>>> history = train_vae(model, load_digits("train", limit=128), epochs=1, progress=False, log=False)
>>> sorted(evaluate_vae(model, load_digits("val", limit=64)))[:3]
['active_dims', 'elbo', 'kl']
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from tutorlib.generative._images import check_img_size, check_images, images_of
from tutorlib.train import Callback, History, Trainer

__all__ = [
    "reparameterize",
    "kl_standard_normal",
    "recon_loss",
    "VAEOutput",
    "ConvVAE",
    "elbo_terms",
    "vae_step_fn",
    "train_vae",
    "evaluate_vae",
    "encode_dataset",
    "latent_traversal",
    "beta_sweep",
    "LIKELIHOODS",
]

LIKELIHOODS = ("bernoulli", "gaussian")


def _check_mu_logvar(mu: Any, logvar: Any) -> None:
    for name, t in (("mu", mu), ("logvar", logvar)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if mu.shape != logvar.shape:
        raise ValueError(f"mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} must have the same shape (B, latent_dim)")


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``z ~ N(μ, σ²)`` as ``z = μ + σ · ε`` with ``ε ~ N(0, I)`` and ``σ = exp(½ log σ²)``.

    The randomness sits in ``ε``, outside the network, so gradients flow to ``μ`` and ``log σ²``
    (this is ``Normal(mu, std).rsample()``). Pass ``eps`` to make the draw explicit.

    >>> mu, logvar = torch.zeros(2, 3), torch.zeros(2, 3)
    >>> reparameterize(mu, logvar, eps=torch.ones(2, 3)).tolist()[0]
    [1.0, 1.0, 1.0]
    """
    _check_mu_logvar(mu, logvar)
    if eps is None:
        if generator is None:
            eps = torch.randn_like(mu)
        else:
            eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=generator.device).to(mu.device)
    elif eps.shape != mu.shape:
        raise ValueError(f"eps {tuple(eps.shape)} must have the shape of mu {tuple(mu.shape)}")
    return mu + torch.exp(0.5 * logvar) * eps


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) = ½ Σ (μ² + σ² − 1 − log σ²), in nats.

    ``reduction``: ``"none"`` → (B, D) per dimension; ``"sum"`` → (B,) summed over latent dims
    (one value per image); ``"mean"`` → scalar, the batch mean of the per-image sums.

    >>> kl_standard_normal(torch.zeros(1, 4), torch.zeros(1, 4)).item()
    0.0
    """
    _check_mu_logvar(mu, logvar)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
    if reduction == "none":
        return kl
    if reduction == "sum":
        return kl.flatten(1).sum(1) if kl.dim() > 1 else kl.sum()
    if reduction == "mean":
        return (kl.flatten(1).sum(1) if kl.dim() > 1 else kl.sum()).mean()
    raise ValueError(f"reduction must be 'none', 'sum' or 'mean', got {reduction!r}")


def recon_loss(logits: torch.Tensor, x: torch.Tensor, likelihood: str = "bernoulli", sigma: float = 0.1) -> torch.Tensor:
    """Negative log-likelihood of ``x`` under the decoder, summed over pixels: one value (nats) per image.

    ``"bernoulli"``: binary cross-entropy with the decoder's logits (pixels in [0, 1]);
    ``"gaussian"``: ``‖x − sigmoid(logits)‖² / (2σ²)`` (a Gaussian with fixed σ, constants dropped).

    >>> recon_loss(torch.zeros(2, 1, 8, 8), torch.full((2, 1, 8, 8), 0.5)).shape
    torch.Size([2])
    """
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    if logits.shape != x.shape:
        raise ValueError(f"decoder output {tuple(logits.shape)} and images {tuple(x.shape)} differ in shape")
    if likelihood == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    else:
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        nll = (torch.sigmoid(logits) - x).pow(2) / (2 * sigma**2)
    return nll.flatten(1).sum(1)


class VAEOutput(NamedTuple):
    """What :meth:`ConvVAE.forward` returns: decoder logits, μ, log σ² and the sampled z.

    >>> ConvVAE(latent_dim=2)(torch.rand(1, 1, 8, 8)).mu.shape
    torch.Size([1, 2])
    """

    logits: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


class ConvVAE(nn.Module):
    """Convolutional VAE for ``img_size``×``img_size`` images (8 for digits, 32 for shapes).

    Encoder: 3×3 conv, then stride-2 4×4 convs down to 4×4, then a linear layer to ``2·latent_dim``
    numbers split into μ and log σ². Decoder: the mirror image with transposed convs; it returns
    logits (apply a sigmoid for pixel intensities, as :meth:`decode` does).

    >>> vae = ConvVAE(in_channels=3, img_size=32, latent_dim=8)
    >>> out = vae(torch.rand(2, 3, 32, 32)); tuple(out.logits.shape), tuple(out.mu.shape)
    ((2, 3, 32, 32), (2, 8))
    """

    def __init__(self, in_channels: int = 1, img_size: int = 8, latent_dim: int = 2, width: int = 32,
                 max_width: int = 128) -> None:
        super().__init__()
        if in_channels <= 0 or latent_dim <= 0 or width <= 0:
            raise ValueError(f"in_channels, latent_dim and width must be positive, got {in_channels}, {latent_dim}, {width}")
        n_down = check_img_size(img_size)
        self.in_channels, self.img_size, self.latent_dim = in_channels, img_size, latent_dim
        enc: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1), nn.SiLU()]
        ch = width
        widths = []
        for _ in range(n_down):
            nxt = min(2 * ch, max_width)
            enc += [nn.Conv2d(ch, nxt, 4, stride=2, padding=1), nn.SiLU()]
            widths.append(ch)
            ch = nxt
        self.encoder = nn.Sequential(*enc, nn.Flatten())
        self.to_stats = nn.Linear(ch * 16, 2 * latent_dim)
        self._top = ch
        dec: list[nn.Module] = []
        for prev in reversed(widths):
            dec += [nn.ConvTranspose2d(ch, prev, 4, stride=2, padding=1), nn.SiLU()]
            ch = prev
        dec.append(nn.Conv2d(ch, in_channels, 3, padding=1))
        self.from_z = nn.Sequential(nn.Linear(latent_dim, self._top * 16), nn.SiLU())
        self.decoder = nn.Sequential(*dec)

    def _check_input(self, x: torch.Tensor) -> None:
        check_images(x, "the VAE's input")
        want = (self.in_channels, self.img_size, self.img_size)
        if tuple(x.shape[1:]) != want:
            raise ValueError(f"expected images of shape (B, {want[0]}, {want[1]}, {want[2]}), got {tuple(x.shape)}")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """μ and log σ² of q(z | x), each (B, latent_dim).

        >>> mu, logvar = ConvVAE().encode(torch.rand(3, 1, 8, 8)); tuple(mu.shape)
        (3, 2)
        """
        self._check_input(x)
        mu, logvar = self.to_stats(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder logits (B, C, H, W) for latent codes ``z`` (B, latent_dim).

        >>> ConvVAE(latent_dim=3).decode_logits(torch.zeros(2, 3)).shape
        torch.Size([2, 1, 8, 8])
        """
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected latent codes of shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        h = self.from_z(z).view(-1, self._top, 4, 4)
        return self.decoder(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] for latent codes ``z`` (the sigmoid of the decoder's logits).

        >>> ConvVAE().decode(torch.zeros(1, 2)).shape
        torch.Size([1, 1, 8, 8])
        """
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> VAEOutput:
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, eps) if self.training or eps is not None else mu
        return VAEOutput(self.decode_logits(z), mu, logvar, z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images decoded from z ~ N(0, I), in [0, 1].

        >>> ConvVAE().sample(4, torch.Generator().manual_seed(0)).shape
        torch.Size([4, 1, 8, 8])
        """
        if n <= 0:
            raise ValueError(f"n must be positive, got {n}")
        dev = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(dev)
        return self.decode(z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean of each image: the VAE's reconstruction in [0, 1].

        >>> ConvVAE().reconstruct(torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 1, 8, 8])
        """
        mu, _ = self.encode(x)
        return self.decode(mu)


def elbo_terms(model: ConvVAE, x: torch.Tensor, beta: float = 1.0, likelihood: str = "bernoulli",
               eps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Batch means of the reconstruction term, the KL term, and ``loss = recon + β · KL`` (nats per image).

    >>> t = elbo_terms(ConvVAE(), torch.rand(4, 1, 8, 8), beta=4.0); sorted(t)
    ['kl', 'loss', 'recon']
    """
    if beta < 0:
        raise ValueError(f"beta must be ≥ 0, got {beta}")
    out = model(x, eps)
    recon = recon_loss(out.logits, x, likelihood).mean()
    kl = kl_standard_normal(out.mu, out.logvar, "mean")
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl}


def vae_step_fn(beta: float = 1.0, likelihood: str = "bernoulli") -> Callable[[Trainer, Any], dict]:
    """A ``step_fn`` for :class:`~tutorlib.train.Trainer` that returns the (β-)ELBO loss of a batch.

    Batches may be images, ``(images, labels)`` or shapes dicts with ``"image"``.

    >>> from tutorlib.train import Trainer
    >>> t = Trainer(ConvVAE(), step_fn=vae_step_fn(beta=1.0), progress=False, log=False)
    >>> float(t.compute(torch.rand(4, 1, 8, 8))["loss"]) > 0
    True
    """
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    if beta < 0:
        raise ValueError(f"beta must be ≥ 0, got {beta}")

    def step(trainer: Trainer, batch: Any) -> dict:
        terms = elbo_terms(trainer.model, images_of(batch), beta, likelihood)
        return {"loss": terms["loss"], "recon": terms["recon"].detach(), "kl": terms["kl"].detach()}

    return step


def train_vae(model: ConvVAE, train_data: Dataset | DataLoader, val_data: Dataset | DataLoader | None = None,
              epochs: int = 10, beta: float = 1.0, likelihood: str = "bernoulli", lr: float = 2e-3,
              batch_size: int = 64, device: str | torch.device | None = None, callbacks: Sequence[Callback] = (),
              **trainer_kwargs: Any) -> History:
    """Train ``model`` on the (β-)ELBO with the shared Trainer; returns its History (``train_loss`` = recon + β·KL).

    >>> from tutorlib.data import load_digits
    >>> h = train_vae(ConvVAE(), load_digits("train", limit=64), epochs=1, progress=False, log=False)
    >>> len(h.epochs)
    1
    """
    if not isinstance(model, ConvVAE):
        raise TypeError(f"model must be a ConvVAE, got {type(model).__name__}")
    trainer = Trainer(model, lr=lr, step_fn=vae_step_fn(beta, likelihood), batch_size=batch_size,
                      device=device, callbacks=callbacks, **trainer_kwargs)
    return trainer.fit(train_data, val_data, epochs=epochs)


def _loader(data: Dataset | DataLoader | torch.Tensor, batch_size: int) -> Any:
    if isinstance(data, torch.Tensor):
        return [data[i:i + batch_size] for i in range(0, len(data), batch_size)]
    if isinstance(data, DataLoader):
        return data
    return DataLoader(data, batch_size=batch_size, shuffle=False)


@torch.no_grad()
def evaluate_vae(model: ConvVAE, data: Dataset | DataLoader | torch.Tensor, likelihood: str = "bernoulli",
                 batch_size: int = 256, active_threshold: float = 0.01) -> dict[str, Any]:
    """Posterior-mean reconstruction (nats/image), KL (nats/image), ELBO = −(recon + KL), KL per latent dim,
    and ``active_dims``: how many dims carry more than ``active_threshold`` nats.

    >>> from tutorlib.data import load_digits
    >>> r = evaluate_vae(ConvVAE(latent_dim=3), load_digits("val", limit=32)); len(r["kl_per_dim"])
    3
    """
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    recon_sum, kl_dims, n = 0.0, None, 0
    try:
        for batch in _loader(data, batch_size):
            x = images_of(batch).to(dev)
            mu, logvar = model.encode(x)
            recon_sum += float(recon_loss(model.decode_logits(mu), x, likelihood).sum())
            kd = kl_standard_normal(mu, logvar, "none").sum(0)
            kl_dims = kd if kl_dims is None else kl_dims + kd
            n += len(x)
    finally:
        model.train(was)
    if n == 0:
        raise ValueError("no data to evaluate: the dataset is empty")
    per_dim = (kl_dims / n).cpu()
    recon, kl = recon_sum / n, float(per_dim.sum())
    return {"recon": recon, "kl": kl, "elbo": -(recon + kl), "kl_per_dim": per_dim.tolist(),
            "active_dims": int((per_dim > active_threshold).sum())}


@torch.no_grad()
def encode_dataset(model: ConvVAE, data: Dataset | DataLoader, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Posterior means μ (N, latent_dim) of every image in ``data`` and its labels (``None`` if unlabelled).

    >>> from tutorlib.data import load_digits
    >>> mu, y = encode_dataset(ConvVAE(), load_digits("val", limit=10)); tuple(mu.shape), tuple(y.shape)
    ((10, 2), (10,))
    """
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    mus, labels = [], []
    try:
        for batch in _loader(data, batch_size):
            mus.append(model.encode(images_of(batch).to(dev))[0].cpu())
            if isinstance(batch, (list, tuple)) and len(batch) > 1 and isinstance(batch[1], torch.Tensor):
                labels.append(batch[1].cpu())
    finally:
        model.train(was)
    return torch.cat(mus), (torch.cat(labels) if labels else None)


@torch.no_grad()
def latent_traversal(model: ConvVAE, z: torch.Tensor | None = None, dims: Sequence[int] | None = None,
                     values: Sequence[float] | torch.Tensor = (-3, -2, -1, 0, 1, 2, 3)) -> torch.Tensor:
    """Decode ``z`` with one latent dimension at a time set to each of ``values``.

    Returns (len(dims) · len(values), C, H, W) images in [0, 1], one row per dimension (for
    :func:`tutorlib.viz.image_grid` with ``ncols=len(values)``).

    >>> latent_traversal(ConvVAE(latent_dim=3), values=[-1, 0, 1]).shape
    torch.Size([9, 1, 8, 8])
    """
    dev = next(model.parameters()).device
    d = model.latent_dim
    base = torch.zeros(d) if z is None else z.detach().flatten().cpu().float()
    if base.numel() != d:
        raise ValueError(f"z must have {d} values (the latent size), got {base.numel()}")
    dims = list(range(d)) if dims is None else list(dims)
    bad = [i for i in dims if not 0 <= i < d]
    if bad:
        raise ValueError(f"dims {bad} are out of range for a {d}-dimensional latent space")
    vals = torch.as_tensor(values, dtype=torch.float32).flatten()
    codes = base.repeat(len(dims) * len(vals), 1)
    for r, i in enumerate(dims):
        codes[r * len(vals):(r + 1) * len(vals), i] = vals
    was = model.training
    model.eval()
    try:
        return model.decode(codes.to(dev)).cpu()
    finally:
        model.train(was)


def beta_sweep(betas: Sequence[float], train_data: Dataset | DataLoader, val_data: Dataset | DataLoader,
               make_model: Callable[[], ConvVAE], epochs: int = 10, likelihood: str = "bernoulli",
               seed: int = 0, **train_kwargs: Any) -> list[dict[str, Any]]:
    """Train one VAE per β (same seed, data and epochs) and measure each on ``val_data``.

    Returns one dict per β: ``beta``, ``recon`` and ``kl`` (nats/image on val), ``elbo``,
    ``active_dims``, ``kl_per_dim`` and the trained ``model``.

    >>> from tutorlib.data import load_digits
    >>> rows = beta_sweep([1.0, 4.0], load_digits("train", limit=64), load_digits("val", limit=32),
    ...                   lambda: ConvVAE(latent_dim=4), epochs=1, progress=False, log=False)
    >>> [r["beta"] for r in rows]
    [1.0, 4.0]
    """
    if not betas:
        raise ValueError("betas is empty: pass values such as [0.5, 1, 2, 4, 8]")
    from tutorlib.runtime import seed_everything

    rows = []
    for beta in betas:
        seed_everything(seed)
        model = make_model()
        train_vae(model, train_data, epochs=epochs, beta=float(beta), likelihood=likelihood, seed=seed, **train_kwargs)
        row = {"beta": float(beta), **evaluate_vae(model, val_data, likelihood), "model": model}
        rows.append(row)
    return rows
