"""Two-dimensional loss surfaces and the paths optimizers take on them.

A 2-D surface makes an optimizer's behaviour visible: plain SGD zig-zags across a narrow valley,
momentum overshoots and rolls back, adaptive methods rescale each coordinate, and some rates
diverge. :data:`SURFACES` holds three classic cases: the Rosenbrock banana valley, a saddle
point with two minima, and an ill-conditioned bowl. :func:`run_trajectory` runs a real
``torch.optim`` optimizer (or ours) on one point for a few hundred steps — this tiny loop *is*
the lesson, so it is written out rather than run through the Trainer.

>>> traj = run_trajectory(SURFACES["bowl"], "momentum", lr=0.02, steps=50)
>>> traj.points.shape[1], traj.final_loss < traj.losses[0]
(2, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tutorlib.optim.optimizers import make_optimizer

__all__ = ["Surface", "Trajectory", "SURFACES", "rosenbrock", "saddle", "ill_conditioned_bowl", "run_trajectory",
           "plot_trajectories"]


def rosenbrock(xy: torch.Tensor) -> torch.Tensor:
    """Rosenbrock's banana: ``(1 - x)² + 100 (y - x²)²``, minimum 0 at (1, 1) at the end of a curved valley.

    >>> rosenbrock(torch.tensor([1.0, 1.0])).item()
    0.0
    """
    x, y = xy[..., 0], xy[..., 1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def saddle(xy: torch.Tensor) -> torch.Tensor:
    """A saddle at (0, 0) between two minima at (0, ±1): ``x²/2 + y⁴/4 − y²/2`` (minimum value −1/4).

    Started almost on the ridge (y ≈ 0), the gradient across it is tiny; how fast an optimizer
    escapes is the test.

    >>> saddle(torch.tensor([0.0, 1.0])).item()
    -0.25
    """
    x, y = xy[..., 0], xy[..., 1]
    return 0.5 * x**2 + 0.25 * y**4 - 0.5 * y**2


def ill_conditioned_bowl(xy: torch.Tensor, condition: float = 25.0) -> torch.Tensor:
    """A quadratic bowl ``(x² + condition · y²) / 2``: curvature ``condition`` times larger along y.

    Plain gradient descent must use a rate below 2/condition to stay stable along y, which makes
    it crawl along x; the condition number is what momentum and adaptive methods fight.

    >>> ill_conditioned_bowl(torch.tensor([1.0, 1.0]), condition=9.0).item()
    5.0
    """
    x, y = xy[..., 0], xy[..., 1]
    return 0.5 * (x**2 + condition * y**2)


@dataclass(frozen=True)
class Surface:
    """A 2-D function with a plotting window, a standard start point and its global minimum.

    >>> SURFACES["rosenbrock"].minimum
    (1.0, 1.0)
    """

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    start: tuple[float, float]
    minimum: tuple[float, float]
    min_value: float
    sgd_lr: float
    adaptive_lr: float
    steps: int

    def __call__(self, xy: torch.Tensor) -> torch.Tensor:
        return self.fn(xy)

    def lr_for(self, optimizer: str) -> float:
        """A rate that works on this surface: ``sgd_lr`` for the SGD family, ``adaptive_lr`` for the others.

        >>> SURFACES["bowl"].lr_for("sgd"), SURFACES["bowl"].lr_for("adam")
        (0.03, 0.1)
        """
        return self.sgd_lr if optimizer.lower() in SGD_FAMILY else self.adaptive_lr


#: Optimizers whose step is the raw gradient times the rate (the others rescale it per coordinate or layer).
SGD_FAMILY = ("sgd", "momentum", "nesterov")

#: The surfaces of lesson 01, by name, with rates and step counts that show each optimizer's character.
SURFACES: dict[str, Surface] = {
    "rosenbrock": Surface("Rosenbrock valley", rosenbrock, (-2.0, 2.0), (-1.0, 3.0), (-1.5, 2.5), (1.0, 1.0), 0.0,
                          sgd_lr=1e-3, adaptive_lr=0.1, steps=300),
    "saddle": Surface("saddle point", saddle, (-2.0, 2.0), (-1.6, 1.6), (-1.8, 1e-3), (0.0, 1.0), -0.25,
                      sgd_lr=0.05, adaptive_lr=0.05, steps=100),
    "bowl": Surface("ill-conditioned bowl (κ = 25)", ill_conditioned_bowl, (-5.0, 5.0), (-2.0, 2.0), (-4.5, 1.5),
                    (0.0, 0.0), 0.0, sgd_lr=0.03, adaptive_lr=0.1, steps=100),
}


@dataclass
class Trajectory:
    """The points an optimizer visited (``steps + 1`` rows of (x, y), fewer if it diverged) and their losses.

    >>> t = Trajectory("sgd", np.zeros((3, 2)), [1.0, 0.5, 0.1], False)
    >>> t.final_loss
    0.1
    """

    name: str
    points: np.ndarray
    losses: list[float]
    diverged: bool

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1])


def _surface(surface: Surface | str) -> Surface:
    if isinstance(surface, Surface):
        return surface
    if surface not in SURFACES:
        raise ValueError(f"unknown surface {surface!r}: use one of {', '.join(SURFACES)} or pass a Surface")
    return SURFACES[surface]


def run_trajectory(
    surface: Surface | str,
    optimizer: str | Callable[[list[torch.nn.Parameter], float], torch.optim.Optimizer],
    lr: float | None = None,
    steps: int | None = None,
    momentum: float | None = None,
    start: Sequence[float] | None = None,
    blowup: float = 1e3,
) -> Trajectory:
    """Minimise ``surface`` from ``start`` with ``optimizer`` for ``steps`` steps and return the path.

    ``optimizer`` is a name for :func:`~tutorlib.optim.make_optimizer` (``momentum`` goes to SGD's
    momentum or Adam's β1) or ``f(params, lr) -> optimizer``. ``lr`` and ``steps`` default to the
    surface's (:meth:`Surface.lr_for`, :attr:`Surface.steps`). The path stops early
    (``diverged=True``) when the loss is no longer finite or the point leaves the ±``blowup`` box.

    >>> run_trajectory("saddle", "adam", lr=0.1, steps=100).final_loss < -0.2
    True
    """
    surf = _surface(surface)
    steps = surf.steps if steps is None else steps
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if lr is None:
        lr = surf.lr_for(optimizer) if isinstance(optimizer, str) else surf.adaptive_lr
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    xy0 = torch.tensor(surf.start if start is None else start, dtype=torch.float64)
    if xy0.shape != (2,):
        raise ValueError(f"start must be a point (x, y), got {list(xy0.shape)} values")
    point = torch.nn.Parameter(xy0.clone())
    if isinstance(optimizer, str):
        opt = make_optimizer(optimizer, [point], lr=lr, momentum=momentum)
        name = optimizer
    else:
        opt = optimizer([point], lr)
        name = type(opt).__name__
    points = [point.detach().numpy().copy()]
    losses = [float(surf(point.detach()))]
    diverged = False
    for _ in range(steps):
        opt.zero_grad()
        loss = surf(point)
        loss.backward()
        opt.step()
        with torch.no_grad():
            value = float(surf(point))
        if not math.isfinite(value) or float(point.detach().abs().max()) > blowup:
            diverged = True
            break
        points.append(point.detach().numpy().copy())
        losses.append(value)
    return Trajectory(name, np.stack(points), losses, diverged)


def plot_trajectories(surface: Surface | str, trajectories: Sequence[Trajectory], ax: Any = None,
                      title: str | None = None):
    """Contours of ``surface`` (log-spaced levels) with each trajectory drawn on top; returns the figure.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> fig = plot_trajectories("bowl", [run_trajectory("bowl", "sgd", lr=0.03, steps=20)])
    """
    import matplotlib.pyplot as plt

    surf = _surface(surface)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 5))
    xs = np.linspace(*surf.xlim, 200)
    ys = np.linspace(*surf.ylim, 200)
    gx, gy = np.meshgrid(xs, ys)
    with torch.no_grad():
        z = surf(torch.from_numpy(np.stack([gx, gy], -1))).numpy()
    shifted = z - surf.min_value + 1e-3
    levels = np.logspace(np.log10(shifted.min()), np.log10(shifted.max()), 25)
    ax.contour(gx, gy, shifted, levels=levels, cmap="viridis", linewidths=0.7, alpha=0.8)
    ax.plot(*surf.minimum, "*", color="gold", ms=16, mec="k", label="minimum", zorder=5)
    ax.plot(*surf.start, "o", color="k", ms=6, label="start", zorder=5)
    for k, t in enumerate(trajectories):
        pts = t.points
        tag = "diverged" if t.diverged else f"loss {t.final_loss:.3g}"
        ax.plot(pts[:, 0], pts[:, 1], "-", color=f"C{k}", lw=1.6, label=f"{t.name} ({tag})", zorder=4)
        ax.plot(pts[-1, 0], pts[-1, 1], "x", color=f"C{k}", ms=9, mew=2, zorder=6)
    ax.set_xlim(*surf.xlim)
    ax.set_ylim(*surf.ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title or f"Optimizer paths on the {surf.name}")
    ax.legend(fontsize=8, loc="lower right")
    ax.figure.tight_layout()
    return ax.figure
