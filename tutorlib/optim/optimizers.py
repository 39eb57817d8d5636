"""Optimizers written from scratch: SGD with momentum (and Nesterov), Adam/AdamW and LAMB.

Each update rule is first a *pure function* on tensors (``sgd_momentum_step``, ``adam_step``,
``lamb_step``: new values in, new values out, nothing changed in place) so that it can be read,
tested and re-implemented in an exercise; the ``torch.optim.Optimizer`` subclasses below apply
those functions to every parameter and keep their state, so they plug into
:class:`tutorlib.train.Trainer` like any torch optimizer.

:class:`SGDMomentum` and :class:`Adam` match ``torch.optim.SGD``/``Adam``/``AdamW`` step for step
(the tests check it); torch has no LAMB, so :class:`LAMB` is checked against the update rule of
You et al. (2020), *Large Batch Optimization for Deep Learning: Training BERT in 76 minutes*,
Algorithm 2.

>>> import torch
>>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
>>> opt = LAMB([w], lr=0.1)
>>> (w ** 2).sum().backward(); opt.step()
>>> w.detach().abs().sum().item() < 3.0
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = [
    "sgd_momentum_step",
    "adam_step",
    "lamb_step",
    "SGDMomentum",
    "Adam",
    "LAMB",
    "make_optimizer",
    "OPTIMIZER_NAMES",
]

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]


# --------------------------------------------------------------------------- validation


def _check_same_shape(**tensors: torch.Tensor | None) -> None:
    shapes = {k: tuple(v.shape) for k, v in tensors.items() if v is not None}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{k} {s}" for k, s in shapes.items())
        raise ValueError(f"expected tensors of one shape, got {listed}: pass the state that belongs to this parameter")


def _check_hparams(lr: float, betas: tuple[float, float] | None = None, eps: float | None = None,
                   weight_decay: float = 0.0, momentum: float | None = None) -> None:
    if not (isinstance(lr, (int, float)) and lr >= 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a finite number >= 0, got {lr!r}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if momentum is not None and not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if betas is not None:
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r} (typical: (0.9, 0.999))")
    if eps is not None and eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps} (typical: 1e-8 for Adam, 1e-6 for LAMB)")


# --------------------------------------------------------------------------- pure update rules


def sgd_momentum_step(
    param: torch.Tensor,
    grad: torch.Tensor,
    buf: torch.Tensor | None,
    lr: float,
    momentum: float = 0.9,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of SGD with (heavy-ball or Nesterov) momentum, as ``torch.optim.SGD`` does it.

    ``g = grad + weight_decay * param``; the velocity ``buf`` is ``g`` on the first step (pass
    ``buf=None``) and ``momentum * buf + g`` afterwards; the step direction is ``buf`` (heavy ball)
    or ``g + momentum * buf`` (Nesterov). Returns ``(new_param, new_buf)``; inputs are not changed.

    >>> p, b = sgd_momentum_step(torch.tensor([1.0]), torch.tensor([0.5]), None, lr=0.1)
    >>> round(p.item(), 4), b.item()
    (0.95, 0.5)
    >>> p, b = sgd_momentum_step(p, torch.tensor([0.5]), b, lr=0.1, momentum=0.9)
    >>> round(p.item(), 4), round(b.item(), 4)
    (0.855, 0.95)
    """
    _check_hparams(lr, weight_decay=weight_decay, momentum=momentum)
    _check_same_shape(param=param, grad=grad, buf=buf)
    if nesterov and momentum <= 0:
        raise ValueError("nesterov=True needs momentum > 0 (Nesterov momentum without momentum is plain SGD)")
    g = grad + weight_decay * param if weight_decay else grad
    new_buf = g.clone() if buf is None else momentum * buf + g
    direction = g + momentum * new_buf if nesterov else new_buf
    return param - lr * direction, new_buf


def adam_step(
    param: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    step: int,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Adam step (Kingma & Ba, 2015); with ``decoupled=True`` the AdamW step (Loshchilov & Hutter, 2019).

    ``step`` is the number of this update, starting at 1 (it drives the bias correction).
    ``m``/``v`` are the running first and second moments (zeros before the first step).
    Weight decay is added to the gradient (an L2 penalty, ``torch.optim.Adam``) or, decoupled,
    shrinks the weights directly by ``lr * weight_decay`` (``torch.optim.AdamW``).
    Returns ``(new_param, new_m, new_v)``; inputs are not changed.

    >>> p, m, v = adam_step(torch.tensor([1.0]), torch.tensor([2.0]), torch.zeros(1), torch.zeros(1), step=1, lr=0.1)
    >>> round(p.item(), 4)  # the first Adam step moves every weight by about lr
    0.9
    """
    _check_hparams(lr, betas, eps, weight_decay)
    _check_same_shape(param=param, grad=grad, m=m, v=v)
    if not isinstance(step, int) or step < 1:
        raise ValueError(f"step must be an int >= 1 (the number of this update), got {step!r}")
    beta1, beta2 = betas
    if weight_decay and decoupled:
        param = param * (1 - lr * weight_decay)
    elif weight_decay:
        grad = grad + weight_decay * param
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1**step)
    v_hat = v / (1 - beta2**step)
    return param - lr * m_hat / (v_hat.sqrt() + eps), m, v


def lamb_step(
    param: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    step: int,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    phi_bounds: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One LAMB step for one layer (You et al., 2020, Algorithm 2).

    Adam's bias-corrected direction ``r = m̂ / (√v̂ + eps)`` plus decoupled weight decay
    ``u = r + weight_decay * param`` is rescaled per layer by the *trust ratio*
    ``φ(‖param‖) / ‖u‖``, so every layer moves by ``lr`` times its own size:
    ``param ← param − lr · φ(‖param‖)/‖u‖ · u``. ``φ`` is the identity, or clamps the weight norm
    to ``phi_bounds = (γ_l, γ_u)`` as in the paper. When either norm is 0 (a freshly zeroed bias,
    say) the ratio is taken as 1, the usual convention of implementations (the paper leaves it open).
    Returns ``(new_param, new_m, new_v)``; inputs are not changed.

    >>> p, m, v = lamb_step(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 0.0]), torch.zeros(2), torch.zeros(2), 1, lr=0.1)
    >>> round(float(torch.linalg.vector_norm(p - torch.tensor([3.0, 4.0]))), 4)  # moved by lr * ||param|| = 0.5
    0.5
    """
    _check_hparams(lr, betas, eps, weight_decay)
    _check_same_shape(param=param, grad=grad, m=m, v=v)
    if not isinstance(step, int) or step < 1:
        raise ValueError(f"step must be an int >= 1 (the number of this update), got {step!r}")
    if phi_bounds is not None and not (len(phi_bounds) == 2 and 0 <= phi_bounds[0] <= phi_bounds[1]):
        raise ValueError(f"phi_bounds must be (low, high) with 0 <= low <= high, got {phi_bounds!r}")
    beta1, beta2 = betas
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1**step)
    v_hat = v / (1 - beta2**step)
    update = m_hat / (v_hat.sqrt() + eps) + weight_decay * param
    w_norm = torch.linalg.vector_norm(param)
    if phi_bounds is not None:
        w_norm = w_norm.clamp(phi_bounds[0], phi_bounds[1])
    u_norm = torch.linalg.vector_norm(update)
    trust = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
    return param - lr * trust * update, m, v


# --------------------------------------------------------------------------- optimizers


class _FromScratch(torch.optim.Optimizer):
    """Shared plumbing: closure handling and gradient checks; subclasses implement ``_update``."""

    def _update(self, p: torch.Tensor, group: dict[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _moments(self, p: torch.Tensor) -> dict[str, Any]:
        """Adam-style state of ``p`` (step count, first and second moments), created on first use; counts this step."""
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:  # type: ignore[override]
        """Update every parameter that has a gradient; returns the closure's loss if one was given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients: use dense embeddings")
                self._update(p, group)
        return loss


class SGDMomentum(_FromScratch):
    """SGD with heavy-ball or Nesterov momentum and (coupled) weight decay; equals ``torch.optim.SGD``.

    >>> w = torch.nn.Parameter(torch.ones(3)); opt = SGDMomentum([w], lr=0.1, momentum=0.9, nesterov=True)
    >>> w.sum().backward(); opt.step(); w.detach().tolist()
    [0.8100000023841858, 0.8100000023841858, 0.8100000023841858]
    """

    def __init__(self, params: Params, lr: float = 1e-2, momentum: float = 0.9, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        _check_hparams(lr, weight_decay=weight_decay, momentum=momentum)
        if nesterov and momentum <= 0:
            raise ValueError("nesterov=True needs momentum > 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay))

    def _update(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        state = self.state[p]
        new_p, buf = sgd_momentum_step(p, p.grad, state.get("momentum_buffer"), group["lr"], group["momentum"],
                                       group["nesterov"], group["weight_decay"])
        state["momentum_buffer"] = buf
        p.copy_(new_p)


class Adam(_FromScratch):
    """Adam (coupled L2 weight decay) or, with ``decoupled=True``, AdamW; equals ``torch.optim.Adam``/``AdamW``.

    >>> w = torch.nn.Parameter(torch.ones(2)); opt = Adam([w], lr=0.1, weight_decay=0.01, decoupled=True)
    >>> w.sum().backward(); opt.step(); [round(x, 4) for x in w.detach().tolist()]
    [0.899, 0.899]
    """

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = False) -> None:
        _check_hparams(lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, decoupled=decoupled))

    def _update(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        state = self._moments(p)
        new_p, state["exp_avg"], state["exp_avg_sq"] = adam_step(
            p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"], group["lr"], group["betas"],
            group["eps"], group["weight_decay"], group["decoupled"])
        p.copy_(new_p)


class LAMB(_FromScratch):
    """LAMB: Adam's direction with decoupled weight decay, rescaled per layer by the trust ratio ‖w‖/‖u‖.

    Built for very large batches (You et al., 2020): the per-layer normalisation keeps every layer's
    relative update size at about ``lr`` whatever the gradient scale. See :func:`lamb_step`.

    >>> model = torch.nn.Linear(4, 2); opt = LAMB(model.parameters(), lr=1e-2, weight_decay=0.01)
    >>> model(torch.randn(8, 4)).pow(2).mean().backward(); opt.step()
    """

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0, phi_bounds: tuple[float, float] | None = None) -> None:
        _check_hparams(lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      phi_bounds=phi_bounds))

    def _update(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        state = self._moments(p)
        new_p, state["exp_avg"], state["exp_avg_sq"] = lamb_step(
            p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"], group["lr"], group["betas"],
            group["eps"], group["weight_decay"], group["phi_bounds"])
        p.copy_(new_p)


# --------------------------------------------------------------------------- factory

#: Names :func:`make_optimizer` understands, in the order lessons show them.
OPTIMIZER_NAMES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "radam", "lamb")


def make_optimizer(name: str, params: Params, lr: float, momentum: float | None = None, weight_decay: float = 0.0,
                   from_scratch: bool = False) -> torch.optim.Optimizer:
    """Build an optimizer by name: one of :data:`OPTIMIZER_NAMES`.

    ``momentum`` sets SGD's momentum (default 0.9 for 'momentum'/'nesterov') and β1 of the Adam
    family and LAMB (default 0.9); RMSprop and Adagrad ignore it. ``from_scratch=True`` returns the
    tutorlib versions of momentum/nesterov/adam/adamw instead of torch's (LAMB is always ours: torch
    has none).

    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> type(make_optimizer("lamb", [w], lr=0.01)).__name__, type(make_optimizer("radam", [w], lr=0.01)).__name__
    ('LAMB', 'RAdam')
    """
    key = name.lower().replace("-", "").replace("_", "").replace(" ", "")
    if key not in OPTIMIZER_NAMES:
        raise ValueError(f"unknown optimizer {name!r}: use one of {', '.join(OPTIMIZER_NAMES)}")
    params = list(params)
    mom = 0.9 if momentum is None else momentum
    betas = (mom, 0.999)
    if key == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if key in ("momentum", "nesterov"):
        if from_scratch:
            return SGDMomentum(params, lr=lr, momentum=mom, nesterov=key == "nesterov", weight_decay=weight_decay)
        return torch.optim.SGD(params, lr=lr, momentum=mom, nesterov=key == "nesterov", weight_decay=weight_decay)
    if key == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay)
    if key == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    if key in ("adam", "adamw"):
        decoupled = key == "adamw"
        if from_scratch:
            return Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, decoupled=decoupled)
        cls = torch.optim.AdamW if decoupled else torch.optim.Adam
        return cls(params, lr=lr, betas=betas, weight_decay=weight_decay)
    if key == "radam":
        return torch.optim.RAdam(params, lr=lr, betas=betas, weight_decay=weight_decay)
    return LAMB(params, lr=lr, betas=betas, weight_decay=weight_decay)
