"""Adversarial examples: FGSM and PGD (L∞) attacks, accuracy under attack, and adversarial training as a ``Trainer`` step.

FGSM (Goodfellow et al., 2015) moves each input by ``eps · sign(∇ₓ loss)``; PGD (Madry et al., 2018)
takes several smaller signed steps and projects back into the ``eps`` ball after each one. For images
the result is clamped to the valid pixel range; for embedding vectors pass ``clamp=None``.

>>> import torch
>>> model = torch.nn.Linear(4, 2)
>>> x = torch.zeros(3, 4); y = torch.tensor([0, 1, 0])
>>> (fgsm(model, x, y, eps=0.1, clamp=None) - x).abs().max().item() <= 0.1 + 1e-7
True
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["fgsm", "pgd", "accuracy_under_attack", "adversarial_step_fn"]

Clamp = tuple[float, float] | None


def _check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a float tensor, got {getattr(x, 'dtype', type(x))}")
    if not isinstance(y, torch.Tensor) or y.shape[0] != x.shape[0]:
        raise ValueError(f"y must be a tensor with one label per example ({x.shape[0]}), got {getattr(y, 'shape', y)}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")


def _input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = loss_fn(model(x), y)
        (g,) = torch.autograd.grad(loss, x)
    return g


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, clamp: Clamp = (0.0, 1.0),
         loss_fn: Callable = F.cross_entropy) -> torch.Tensor:
    """Fast gradient sign method: ``x + eps · sign(∇ₓ loss(model(x), y))``, clamped to ``clamp``.

    The model's mode (train/eval) is left as it is: call ``model.eval()`` first to attack the deployed model.

    >>> m = torch.nn.Linear(2, 2, bias=False); m.weight.data = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> fgsm(m, torch.zeros(1, 2), torch.tensor([0]), 0.5, clamp=None).tolist()
    [[-0.5, 0.5]]
    """
    _check(model, x, y, eps)
    adv = x.detach() + eps * _input_grad(model, x, y, loss_fn).sign()
    return adv.clamp(*clamp).detach() if clamp is not None else adv.detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float | None = None, steps: int = 10,
        random_start: bool = True, clamp: Clamp = (0.0, 1.0), loss_fn: Callable = F.cross_entropy,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient descent (L∞): ``steps`` signed steps of size ``alpha`` (default ``2.5·eps/steps``), each
    projected back to ``|x_adv - x| ≤ eps`` (and ``clamp``). ``random_start`` begins at a uniform point in the ball.

    With ``steps=1, alpha=eps, random_start=False`` it is :func:`fgsm`.

    >>> m = torch.nn.Linear(3, 2); x = torch.rand(4, 3); y = torch.tensor([0, 1, 1, 0])
    >>> torch.allclose(pgd(m, x, y, 0.1, alpha=0.1, steps=1, random_start=False), fgsm(m, x, y, 0.1))
    True
    """
    _check(model, x, y, eps)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    alpha = 2.5 * eps / steps if alpha is None else alpha
    x0 = x.detach()
    adv = x0.clone()
    if random_start and eps > 0:
        noise = torch.rand(x0.shape, generator=generator, device="cpu").to(x0.device, x0.dtype)
        adv = adv + (2 * noise - 1) * eps
        if clamp is not None:
            adv = adv.clamp(*clamp)
    for _ in range(steps):
        adv = adv + alpha * _input_grad(model, adv, y, loss_fn).sign()
        adv = torch.max(torch.min(adv, x0 + eps), x0 - eps)
        if clamp is not None:
            adv = adv.clamp(*clamp)
    return adv.detach()


@torch.no_grad()
def _acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(x).argmax(-1) == y).float().mean())


def accuracy_under_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: str = "pgd", eps: float = 0.1,
                          batch_size: int = 256, **kw) -> float:
    """Accuracy of ``model`` (put in eval mode) on ``attack``-perturbed ``x`` ('none', 'fgsm' or 'pgd'; ``kw`` go to the attack).

    >>> m = torch.nn.Linear(4, 2); x = torch.rand(8, 4); y = torch.zeros(8, dtype=torch.long)
    >>> accuracy_under_attack(m, x, y, "fgsm", eps=0.0) == accuracy_under_attack(m, x, y, "none")
    True
    """
    if attack not in ("none", "fgsm", "pgd"):
        raise ValueError(f"attack must be 'none', 'fgsm' or 'pgd', got {attack!r}")
    was = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        if attack == "fgsm":
            xb = fgsm(model, xb, yb, eps, **kw)
        elif attack == "pgd":
            xb = pgd(model, xb, yb, eps, **kw)
        correct += _acc(model, xb, yb) * len(xb)
    model.train(was)
    return correct / max(len(x), 1)


def adversarial_step_fn(eps: float, attack: str = "pgd", mix: float = 0.5, steps: int = 5, clamp: Clamp = (0.0, 1.0)):
    """A ``Trainer`` ``step_fn`` for adversarial training on ``(x, y)`` batches: the loss is
    ``(1 - mix) · clean loss + mix · loss on attacked inputs`` (``mix=1`` is Madry et al.'s pure PGD training).

    The attack is crafted with the model in eval mode (so BatchNorm statistics are not polluted).

    >>> from tutorlib.train import Trainer
    >>> t = Trainer(torch.nn.Linear(4, 2), step_fn=adversarial_step_fn(0.1, "fgsm", clamp=None), progress=False, log=False)
    >>> sorted(t.compute((torch.rand(6, 4), torch.zeros(6, dtype=torch.long))))
    ['logits', 'loss', 'targets']
    """
    if attack not in ("fgsm", "pgd"):
        raise ValueError(f"attack must be 'fgsm' or 'pgd', got {attack!r}")
    if not 0 <= mix <= 1:
        raise ValueError(f"mix must be in [0, 1], got {mix}")

    def step(trainer, batch):  # noqa: ANN001, ANN202
        x, y = batch
        model = trainer.model
        was = model.training
        model.eval()
        adv = fgsm(model, x, y, eps, clamp=clamp) if attack == "fgsm" else pgd(model, x, y, eps, steps=steps, clamp=clamp)
        model.train(was)
        logits = model(torch.cat([x, adv]))
        clean, attacked = logits[: len(x)], logits[len(x):]
        loss = (1 - mix) * F.cross_entropy(clean, y) + mix * F.cross_entropy(attacked, y)
        return {"loss": loss, "logits": clean.detach(), "targets": y}

    return step
