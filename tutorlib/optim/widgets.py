"""Lesson 01's widgets: optimizer paths on 2-D loss surfaces, and learning-rate schedules, under your control.

The drawing logic is a plain function (:func:`draw_trajectories`, :func:`draw_schedules`) so it
can be tested without a browser; the widgets only collect values from sliders and call it.

>>> box = trajectory_explorer()
>>> box.explorer.controls["surface"].value = "saddle"
>>> box.explorer.last["surface"]
'saddle'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tutorlib.optim.optimizers import OPTIMIZER_NAMES
from tutorlib.optim.schedules import SCHEDULE_NAMES, lr_trace
from tutorlib.optim.surfaces import SGD_FAMILY, SURFACES, Trajectory, plot_trajectories, run_trajectory
from tutorlib.widgets import redraw

__all__ = ["draw_trajectories", "trajectory_explorer", "TrajectoryExplorer", "draw_schedules", "schedule_explorer"]


def draw_trajectories(surface: str, optimizers: Sequence[str], sgd_lr: float, adaptive_lr: float,
                      momentum: float = 0.9, steps: int = 100, ax: Any = None) -> tuple[Any, list[Trajectory]]:
    """Run each optimizer on ``surface`` and draw all paths on one contour plot; returns (figure, trajectories).

    ``sgd_lr`` is used by sgd/momentum/nesterov, ``adaptive_lr`` by the others; ``momentum`` is SGD's
    momentum and β1 of Adam, AdamW, RAdam and LAMB.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> fig, trajs = draw_trajectories("bowl", ["sgd", "adam"], 0.03, 0.1, steps=20)
    >>> [t.name for t in trajs]
    ['sgd', 'adam']
    """
    if surface not in SURFACES:
        raise ValueError(f"unknown surface {surface!r}: use one of {', '.join(SURFACES)}")
    unknown = [o for o in optimizers if o not in OPTIMIZER_NAMES]
    if unknown:
        raise ValueError(f"unknown optimizer(s) {unknown}: use names from {', '.join(OPTIMIZER_NAMES)}")
    trajs = []
    for name in optimizers:
        lr = sgd_lr if name in SGD_FAMILY else adaptive_lr
        mom = momentum if name != "sgd" else None
        trajs.append(run_trajectory(surface, name, lr=lr, steps=steps, momentum=mom))
    fig = plot_trajectories(surface, trajs, ax=ax,
                            title=f"{SURFACES[surface].name}: {steps} steps, momentum/β1 = {momentum:g}")
    return fig, trajs


class TrajectoryExplorer:
    """The widget behind :func:`trajectory_explorer`: controls, an output area, and the last drawn state."""

    def __init__(self, surface: str = "rosenbrock", optimizers: Sequence[str] = ("sgd", "momentum", "adam")) -> None:
        import ipywidgets as w

        if surface not in SURFACES:
            raise ValueError(f"unknown surface {surface!r}: use one of {', '.join(SURFACES)}")
        surf = SURFACES[surface]
        style = {"description_width": "110px"}
        self.controls: dict[str, Any] = {
            "surface": w.Dropdown(options=list(SURFACES), value=surface, description="surface", style=style),
            "optimizers": w.SelectMultiple(options=list(OPTIMIZER_NAMES), value=tuple(optimizers), rows=9,
                                           description="optimizers", style=style),
            "sgd_lr": w.FloatLogSlider(value=surf.sgd_lr, base=10, min=-4, max=0, step=0.05, description="lr (SGD family)",
                                       continuous_update=False, style=style, readout_format=".2g"),
            "adaptive_lr": w.FloatLogSlider(value=surf.adaptive_lr, base=10, min=-3, max=0.5, step=0.05,
                                            description="lr (adaptive)", continuous_update=False, style=style,
                                            readout_format=".2g"),
            "momentum": w.FloatSlider(value=0.9, min=0.0, max=0.99, step=0.01, description="momentum / β1",
                                      continuous_update=False, style=style),
            "steps": w.IntSlider(value=surf.steps, min=10, max=1000, step=10, description="steps",
                                 continuous_update=False, style=style),
        }
        self.output = w.Output()
        self.status = w.HTML()
        self.last: dict[str, Any] = {}
        self.renders = 0
        self._syncing = False
        self.controls["surface"].observe(self._on_surface, names="value")
        for key, ctl in self.controls.items():
            if key != "surface":
                ctl.observe(lambda _change: self.refresh(), names="value")
        left = w.VBox([self.controls[k] for k in ("surface", "optimizers")])
        right = w.VBox([self.controls[k] for k in ("sgd_lr", "adaptive_lr", "momentum", "steps")] + [self.status])
        self.box = w.VBox([w.HBox([left, right]), self.output])
        self.box.add_class("tutorlib-widget")
        self.box.explorer = self  # type: ignore[attr-defined]
        self.refresh()

    def _on_surface(self, change: dict[str, Any]) -> None:
        surf = SURFACES[change["new"]]
        self._syncing = True  # set the surface's default rates without redrawing three times
        try:
            self.controls["sgd_lr"].value = surf.sgd_lr
            self.controls["adaptive_lr"].value = surf.adaptive_lr
            self.controls["steps"].value = surf.steps
        finally:
            self._syncing = False
        self.refresh()

    def values(self) -> dict[str, Any]:
        """The current control values, as :func:`draw_trajectories` takes them."""
        c = self.controls
        return {"surface": c["surface"].value, "optimizers": list(c["optimizers"].value), "sgd_lr": c["sgd_lr"].value,
                "adaptive_lr": c["adaptive_lr"].value, "momentum": c["momentum"].value, "steps": c["steps"].value}

    def refresh(self) -> None:
        """Redraw the paths for the current control values (called on every change)."""
        if self._syncing:
            return

        vals = self.values()
        if not vals["optimizers"]:
            redraw(self.output, "select at least one optimizer (ctrl/cmd-click for several)")
            self.last = dict(vals, trajectories=[])
            return
        fig, trajs = draw_trajectories(**vals)
        redraw(self.output, fig)
        self.renders += 1
        self.last = dict(vals, trajectories=trajs)
        self.status.value = "<br>".join(
            f"{t.name}: {'<b>diverged</b>' if t.diverged else f'final loss {t.final_loss:.3g}'}" for t in trajs)


def trajectory_explorer(surface: str = "rosenbrock", optimizers: Sequence[str] = ("sgd", "momentum", "adam")):
    """A widget: pick a surface, optimizers, learning rates, momentum and steps; see every path on one plot.

    Returns the top container (``box.explorer`` is the :class:`TrajectoryExplorer` behind it).

    >>> box = trajectory_explorer("bowl", ["sgd"])
    >>> box.explorer.renders
    1
    """
    return TrajectoryExplorer(surface, optimizers).box


def draw_schedules(names: Sequence[str], total_steps: int, warmup_steps: int, base_lr: float = 1e-3, ax: Any = None):
    """Plot the chosen schedules' learning rate per step; returns the figure (see :func:`plot_schedules`).

    >>> import matplotlib; matplotlib.use("Agg")
    >>> fig = draw_schedules(["cosine", "one_cycle"], 100, 10)
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    for name in names:
        ax.plot(lr_trace(name, total_steps, base_lr, min(warmup_steps, total_steps)), label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(f"Schedules over {total_steps} steps, {warmup_steps} warmup steps")
    if names:
        ax.legend()
    ax.figure.tight_layout()
    return ax.figure


def schedule_explorer():
    """A widget: choose schedules, the number of steps and of warmup steps; see the learning-rate curves.

    >>> box = schedule_explorer(); len(box.children)
    2
    """
    import ipywidgets as w

    names = w.SelectMultiple(options=list(SCHEDULE_NAMES), value=("constant", "cosine", "one_cycle"), rows=6,
                             description="schedules")
    total = w.IntSlider(value=200, min=20, max=2000, step=20, description="total steps", continuous_update=False)
    warm = w.IntSlider(value=20, min=0, max=500, step=5, description="warmup steps", continuous_update=False)
    out = w.Output()
    box = w.VBox([w.HBox([names, w.VBox([total, warm])]), out])
    box.add_class("tutorlib-widget")
    box.renders = 0  # type: ignore[attr-defined]

    def refresh(_change: Any = None) -> None:
        redraw(out, draw_schedules(list(names.value), total.value, min(warm.value, total.value)))
        box.renders += 1  # type: ignore[attr-defined]

    for ctl in (names, total, warm):
        ctl.observe(refresh, names="value")
    box.controls = {"schedules": names, "total_steps": total, "warmup_steps": warm}  # type: ignore[attr-defined]
    refresh()
    return box
