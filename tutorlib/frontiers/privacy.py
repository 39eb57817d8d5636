"""Differential privacy for training: per-sample gradients with ``torch.func``, clipping, DP-SGD, and an RDP accountant.

DP-SGD (Abadi et al., 2016) bounds each example's influence: every per-example gradient is clipped
to L2 norm ``C``, the clipped gradients are summed, Gaussian noise of standard deviation ``σ·C`` is
added, and the sum is divided by the expected batch size. Batches are drawn by *Poisson sampling*
(each example joins with probability ``q``), which is what the accountant assumes.

The accountant is Rényi DP (Mironov, 2017) of the Poisson-subsampled Gaussian mechanism (Mironov,
Talwar & Zhang, 2019): for an integer order ``α`` the RDP is exactly
``log(Σ_k C(α,k) (1-q)^(α-k) q^k exp((k²-k)/(2σ²))) / (α-1)``; fractional orders are integrated
numerically. RDP composes by addition over steps and converts to (ε, δ)-DP with the bound of Balle
et al. (2020), ``ε = rdp + log((α-1)/α) - (log δ + log α)/(α-1)``, minimised over ``α`` (the same
choice as Opacus' ``RDPAccountant``).

>>> round(rdp_subsampled_gaussian(q=1.0, noise_multiplier=2.0, orders=[4])[0], 6)  # α / (2σ²) without subsampling
0.5
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "per_sample_grads",
    "per_sample_grads_loop",
    "clip_per_sample",
    "privatize",
    "dp_sgd_step_fn",
    "rdp_subsampled_gaussian",
    "rdp_to_epsilon",
    "dp_epsilon",
    "DEFAULT_ORDERS",
]

DEFAULT_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def per_sample_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     loss_fn: Callable = F.cross_entropy) -> dict[str, torch.Tensor]:
    """Gradient of ``loss_fn(model(x_i), y_i)`` for every example ``i`` at once (``torch.func.vmap`` of ``grad``).

    Returns ``{param name: (B, *param.shape)}``. The model must not mix examples inside a batch
    (BatchNorm does: use GroupNorm/LayerNorm, or eval mode).

    >>> m = nn.Linear(3, 2); x = torch.randn(4, 3); y = torch.tensor([0, 1, 1, 0])
    >>> g = per_sample_grads(m, x, y); g["weight"].shape
    torch.Size([4, 2, 3])
    >>> torch.allclose(g["weight"].mean(0), torch.autograd.grad(F.cross_entropy(m(x), y), m.weight)[0], atol=1e-6)
    True
    """
    from torch.func import functional_call, grad, vmap

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()) and model.training:
        raise ValueError("BatchNorm in training mode mixes examples, so per-sample gradients are undefined: "
                         "use GroupNorm/LayerNorm (or call model.eval())")
    params = _params(model)
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def loss_one(p: dict, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return loss_fn(out, yi.unsqueeze(0))

    return vmap(grad(loss_one), in_dims=(None, 0, 0), randomness="different")(params, x, y)


def per_sample_grads_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                          loss_fn: Callable = F.cross_entropy) -> dict[str, torch.Tensor]:
    """The slow reference: one backward pass per example (for tests and for the speed comparison).

    >>> m = nn.Linear(3, 2); x = torch.randn(4, 3); y = torch.tensor([0, 1, 1, 0])
    >>> torch.allclose(per_sample_grads_loop(m, x, y)["bias"], per_sample_grads(m, x, y)["bias"], atol=1e-6)
    True
    """
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = [p for p in model.parameters() if p.requires_grad]
    rows: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    for i in range(len(x)):
        gs = torch.autograd.grad(loss_fn(model(x[i:i + 1]), y[i:i + 1]), params)
        for n, g in zip(names, gs):
            rows[n].append(g)
    return {n: torch.stack(v) for n, v in rows.items()}


def clip_per_sample(grads: dict[str, torch.Tensor], max_norm: float) -> dict[str, torch.Tensor]:
    """Scale each example's gradient (all parameters together) to L2 norm at most ``max_norm``.

    The factor for example ``i`` is ``min(1, max_norm / (‖g_i‖ + 1e-6))`` where ``‖g_i‖`` is the norm of
    the concatenation of that example's gradients over every parameter.

    >>> g = {"w": torch.tensor([[3.0, 4.0], [0.3, 0.4]])}
    >>> clip_per_sample(g, 1.0)["w"].round(decimals=4).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.30000001192092896, 0.4000000059604645]]
    """
    if not grads:
        raise ValueError("grads is empty: pass the dict from per_sample_grads(...)")
    if max_norm <= 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    B = {g.shape[0] for g in grads.values()}
    if len(B) != 1:
        raise ValueError(f"every per-sample gradient needs the same batch dimension, got {sorted(B)}")
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads.values()))
    factor = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    return {n: g * factor.view(-1, *([1] * (g.dim() - 1))) for n, g in grads.items()}


def privatize(grads: dict[str, torch.Tensor], max_norm: float, noise_multiplier: float, expected_batch: float,
              generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Clip per-sample ``grads``, sum them, add ``N(0, (noise_multiplier·max_norm)²)`` noise and divide by ``expected_batch``.

    >>> g = {"w": torch.ones(4, 2)}
    >>> privatize(g, 10.0, 0.0, 4)["w"].tolist()
    [1.0, 1.0]
    """
    if noise_multiplier < 0 or expected_batch <= 0:
        raise ValueError(f"need noise_multiplier >= 0 and expected_batch > 0, got {noise_multiplier}, {expected_batch}")
    out = {}
    for n, g in clip_per_sample(grads, max_norm).items():
        s = g.sum(0)
        if noise_multiplier > 0:
            noise = torch.randn(s.shape, generator=generator, device="cpu", dtype=s.dtype).to(s.device)
            s = s + noise_multiplier * max_norm * noise
        out[n] = s / expected_batch
    return out


def dp_sgd_step_fn(x_train: torch.Tensor, y_train: torch.Tensor, sample_rate: float, max_norm: float = 1.0,
                   noise_multiplier: float = 1.0, lr: float = 0.5, seed: int = 0,
                   loss_fn: Callable = F.cross_entropy):
    """A ``Trainer`` ``step_fn`` (use ``manual_optimization=True``) doing one DP-SGD step per "batch".

    Each call draws a Poisson sample of ``(x_train, y_train)`` (each example with probability
    ``sample_rate``), computes per-sample gradients, privatizes them (:func:`privatize`) and takes an
    SGD step of size ``lr``. Feed the Trainer a dataset with one item per step, e.g.
    ``TensorDataset(torch.arange(steps))`` with ``batch_size=1``.

    >>> from tutorlib.train import Trainer
    >>> m = nn.Linear(4, 2); x = torch.randn(50, 4); y = torch.randint(0, 2, (50,))
    >>> t = Trainer(m, step_fn=dp_sgd_step_fn(x, y, 0.2), manual_optimization=True, batch_size=1, progress=False, log=False)
    >>> len(t.fit(torch.utils.data.TensorDataset(torch.arange(3))).steps)
    3
    """
    if not 0 < sample_rate <= 1:
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
    gen = torch.Generator().manual_seed(seed)
    expected = sample_rate * len(x_train)

    def step(trainer, batch):  # noqa: ANN001, ANN202
        model = trainer.model
        dev = next(model.parameters()).device
        pick = torch.rand(len(x_train), generator=gen) < sample_rate
        if not pick.any():
            return {"loss": torch.zeros((), device=dev)}
        xb, yb = x_train[pick].to(dev), y_train[pick].to(dev)
        g = privatize(per_sample_grads(model, xb, yb, loss_fn), max_norm, noise_multiplier, expected, gen)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in g:
                    p -= lr * g[n]
            loss = loss_fn(model(xb), yb)
        return {"loss": loss}

    return step


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _log_a_int(q: float, sigma: float, alpha: int) -> float:
    terms = [_log_comb(alpha, k) + (alpha - k) * math.log1p(-q) + k * math.log(q) + (k * k - k) / (2 * sigma**2)
             for k in range(alpha + 1)] if q < 1 else [(alpha * alpha - alpha) / (2 * sigma**2)]
    m = max(terms)
    return m + math.log(sum(math.exp(t - m) for t in terms))


def _log_a_frac(q: float, sigma: float, alpha: float) -> float:
    from scipy import integrate

    # E_{z~N(0,σ²)}[((1-q) + q·exp((2z-1)/(2σ²)))^α], integrated in a shifted, log-stable form
    def log_integrand(z: float) -> float:
        log_ratio = np.logaddexp(math.log1p(-q), math.log(q) + (2 * z - 1) / (2 * sigma**2))
        return -z * z / (2 * sigma**2) - 0.5 * math.log(2 * math.pi * sigma**2) + alpha * log_ratio

    zs = np.linspace(-40 * sigma, 40 * sigma + alpha / sigma, 4001)
    log_ratio = np.logaddexp(math.log1p(-q), math.log(q) + (2 * zs - 1) / (2 * sigma**2))
    peak = float(np.max(-zs * zs / (2 * sigma**2) - 0.5 * math.log(2 * math.pi * sigma**2) + alpha * log_ratio))
    val, _ = integrate.quad(lambda z: math.exp(log_integrand(z) - peak), -np.inf, np.inf, limit=200,
                            epsabs=0, epsrel=1e-10)
    return peak + math.log(val)


def rdp_subsampled_gaussian(q: float, noise_multiplier: float, orders: Sequence[float] = DEFAULT_ORDERS,
                            steps: int = 1) -> list[float]:
    """RDP ε(α) of ``steps`` compositions of the Poisson-subsampled Gaussian mechanism, one value per order.

    ``q``: sampling rate; ``noise_multiplier``: σ (noise std / clipping norm). Integer orders use the
    exact binomial sum; fractional orders a numerical integral of the same quantity.

    >>> [round(v, 4) for v in rdp_subsampled_gaussian(1.0, 1.0, [2, 3], steps=10)]
    [10.0, 15.0]
    >>> rdp_subsampled_gaussian(0.0, 1.0, [2])
    [0.0]
    """
    if not 0 <= q <= 1:
        raise ValueError(f"q (sampling rate) must be in [0, 1], got {q}")
    if noise_multiplier <= 0:
        raise ValueError(f"noise_multiplier must be positive (σ = 0 gives no privacy), got {noise_multiplier}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    out = []
    for a in orders:
        if a <= 1:
            raise ValueError(f"RDP orders must be > 1, got {a}")
        if q == 0:
            out.append(0.0)
            continue
        if q == 1:
            out.append(steps * a / (2 * noise_multiplier**2))
            continue
        la = _log_a_int(q, noise_multiplier, int(a)) if float(a).is_integer() else _log_a_frac(q, noise_multiplier, a)
        out.append(steps * la / (a - 1))
    return out


def rdp_to_epsilon(rdp: Sequence[float], orders: Sequence[float], delta: float) -> tuple[float, float]:
    """Convert RDP values to ``(ε, best order)`` for a given δ (Balle et al. 2020 conversion, minimised over orders).

    >>> eps, a = rdp_to_epsilon([1.0, 2.0], [2, 3], 1e-5); round(eps, 3), a
    (6.802, 3)
    """
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if len(rdp) != len(orders) or not len(rdp):
        raise ValueError("rdp and orders must be non-empty and of the same length")
    a = np.asarray(orders, dtype=np.float64)
    r = np.asarray(rdp, dtype=np.float64)
    eps = r + np.log((a - 1) / a) - (np.log(delta) + np.log(a)) / (a - 1)
    i = int(np.nanargmin(eps))
    return float(max(eps[i], 0.0)), float(a[i]) if not float(a[i]).is_integer() else int(a[i])


def dp_epsilon(q: float, noise_multiplier: float, steps: int, delta: float = 1e-5,
               orders: Sequence[float] = DEFAULT_ORDERS) -> float:
    """ε spent by ``steps`` DP-SGD steps with sampling rate ``q`` and noise multiplier σ, at ``delta``.

    >>> round(dp_epsilon(0.01, 1.1, 1000, orders=range(2, 64)), 2)
    1.73
    """
    return rdp_to_epsilon(rdp_subsampled_gaussian(q, noise_multiplier, list(orders), steps), list(orders), delta)[0]
