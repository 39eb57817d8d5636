"""Integrated gradients from scratch: average the gradient along a straight path from a baseline to the input.

A plain gradient says how the output would change for an infinitesimal nudge — and is near zero
wherever the model is saturated, even for features that matter. Integrated gradients (Sundararajan
et al., 2017) integrate the gradient along the straight line ``x' + α (x − x')`` from a baseline
``x'`` (an "absent" input: zeros, PAD tokens) to ``x``:

    IG_i(x) = (x_i − x'_i) · ∫₀¹ ∂f(x' + α (x − x')) / ∂x_i dα.

The attributions add up to ``f(x) − f(x')`` (completeness); the gap that a finite number of steps
leaves is the *convergence delta*, the first thing to check. :func:`integrated_gradients` gives the
same numbers as ``captum.attr.IntegratedGradients`` with the same ``method`` and ``n_steps``
(checked in the tests); :func:`tutorlib.explain.explain_text` uses captum's
``LayerIntegratedGradients`` on MiniLM's embeddings.

>>> import torch
>>> f = lambda x: (x ** 2).sum(1, keepdim=True)
>>> attr, delta = integrated_gradients(f, torch.tensor([[1.0, 2.0]]), steps=50)
>>> attr.round(decimals=3).tolist(), round(delta.item(), 6)
([[1.0, 4.0]], 0.0)
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

__all__ = ["path_points", "integrated_gradients", "IG_METHODS"]

IG_METHODS = ("riemann_middle", "riemann_left", "riemann_right", "riemann_trapezoid", "gausslegendre")


def path_points(steps: int, method: str = "riemann_middle") -> tuple[torch.Tensor, torch.Tensor]:
    """Where on the path (α in [0, 1]) to take gradients, and the weight of each: a quadrature rule.

    ``riemann_middle``: α = (k + ½)/n, weights 1/n. ``riemann_trapezoid``: α = k/(n−1), end points
    half-weighted. ``gausslegendre``: Gauss–Legendre nodes (captum's default).

    >>> a, w = path_points(4); a.tolist(), w.tolist()
    ([0.125, 0.375, 0.625, 0.875], [0.25, 0.25, 0.25, 0.25])
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if method == "riemann_middle":
        alphas = (np.arange(steps) + 0.5) / steps
        weights = np.full(steps, 1.0 / steps)
    elif method == "riemann_left":
        alphas, weights = np.arange(steps) / steps, np.full(steps, 1.0 / steps)
    elif method == "riemann_right":
        alphas, weights = np.arange(1, steps + 1) / steps, np.full(steps, 1.0 / steps)
    elif method == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("the trapezoid rule needs steps ≥ 2")
        alphas = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
    elif method == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(steps)
        alphas, weights = 0.5 * (nodes + 1), 0.5 * w
    else:
        raise ValueError(f"unknown method {method!r}: use one of {IG_METHODS}")
    return torch.tensor(alphas, dtype=torch.float64), torch.tensor(weights, dtype=torch.float64)


def integrated_gradients(forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
                         baseline: torch.Tensor | None = None, target: int | None = None, steps: int = 50,
                         method: str = "riemann_middle",
                         internal_batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrated gradients of ``forward(x)[:, target]`` for each row of ``inputs``; returns (attributions, delta).

    ``forward`` maps (B, …) to (B,) or (B, C); ``baseline`` defaults to zeros. ``delta`` (B,) is
    ``Σ attributions − (f(x) − f(baseline))``: near zero when ``steps`` is large enough.

    >>> w = torch.tensor([[1.0], [-2.0]])
    >>> attr, delta = integrated_gradients(lambda x: x @ w, torch.tensor([[3.0, 1.0]]), steps=4)
    >>> attr.tolist()
    [[3.0, -2.0]]
    """
    if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point():
        raise TypeError(f"inputs must be a floating-point tensor (B, ...), got {type(inputs).__name__}"
                        f"{'' if not isinstance(inputs, torch.Tensor) else ' of dtype ' + str(inputs.dtype)}: "
                        "integer token ids need LayerIntegratedGradients on the embedding layer")
    if inputs.dim() < 2:
        raise ValueError(f"inputs must have a batch dimension (B, ...), got shape {tuple(inputs.shape)}: use x.unsqueeze(0)")
    baseline = torch.zeros_like(inputs) if baseline is None else baseline.to(inputs)
    if baseline.shape != inputs.shape:
        raise ValueError(f"baseline has shape {tuple(baseline.shape)} but inputs have {tuple(inputs.shape)}: they must match")
    alphas, weights = path_points(steps, method)
    alphas, weights = alphas.to(inputs), weights.to(inputs)

    def output(x: torch.Tensor) -> torch.Tensor:
        out = forward(x)
        if out.dim() == 2:
            if target is None:
                if out.shape[1] != 1:
                    raise ValueError(f"forward returns {out.shape[1]} outputs per row: pass target=<class index>")
                return out[:, 0]
            return out[:, target]
        if out.dim() == 1:
            return out
        raise ValueError(f"forward must return (B,) or (B, C), got shape {tuple(out.shape)}")

    B = inputs.shape[0]
    diff = inputs - baseline
    grads_sum = torch.zeros_like(inputs)
    chunk = internal_batch_size or steps * B
    points = (baseline.unsqueeze(0) + alphas.view(-1, *[1] * inputs.dim()) * diff.unsqueeze(0))  # (S, B, ...)
    flat = points.reshape(steps * B, *inputs.shape[1:])
    step_w = weights.repeat_interleave(B)
    for start in range(0, flat.shape[0], chunk):
        x = flat[start:start + chunk].detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(output(x).sum(), x)
        contrib = grad * step_w[start:start + chunk].view(-1, *[1] * (inputs.dim() - 1))
        idx = torch.arange(start, start + x.shape[0], device=inputs.device) % B
        grads_sum.index_add_(0, idx, contrib)
    attributions = diff * grads_sum
    with torch.no_grad():
        gap = output(inputs) - output(baseline)
    delta = attributions.reshape(B, -1).sum(1) - gap
    return attributions.detach(), delta.detach()
