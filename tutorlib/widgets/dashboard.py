"""A live training dashboard: an ipywidgets panel with a progress bar, the latest numbers and the curves,
updated during ``fit``; outside Jupyter it degrades to a printed line per epoch.

>>> from tutorlib.train import Trainer
>>> from tutorlib.widgets import TrainingDashboard
>>> # Trainer(model, callbacks=[TrainingDashboard()]) or simply Trainer(model, live=True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tutorlib.train.callbacks import Callback, PrintLogger

if TYPE_CHECKING:  # pragma: no cover
    from tutorlib.train.trainer import Trainer

__all__ = ["TrainingDashboard", "in_notebook"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where widgets can render).

    >>> in_notebook()
    False
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


class TrainingDashboard(Callback):
    """Callback showing step progress, the last loss/LR and train/val curves, redrawn each epoch.

    ``update_every`` steps the header text refreshes; the plot refreshes at each epoch end.
    """

    def __init__(self, title: str = "Training", update_every: int = 10, force_widgets: bool | None = None) -> None:
        self.title = title
        self.update_every = max(1, update_every)
        self.use_widgets = in_notebook() if force_widgets is None else force_widgets
        self._printer = PrintLogger()
        self.box: Any = None

    def on_fit_start(self, trainer: "Trainer") -> None:
        if not self.use_widgets:
            return
        import ipywidgets as w
        from IPython.display import display

        self.header = w.HTML(value=f"<b>{self.title}</b>: starting…")
        self.bar = w.IntProgress(value=0, min=0, max=1, description="steps", layout=w.Layout(width="60%"))
        self.plot = w.Output()
        self.box = w.VBox([self.header, self.bar, self.plot])
        self.box.add_class("tutorlib-dashboard")
        display(self.box)

    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None:
        if self.box is not None:
            self.bar.max = max(1, trainer.total_steps)

    def on_step_end(self, trainer: "Trainer", logs: dict[str, Any]) -> None:
        if self.box is None:
            return
        self.bar.value = int(logs["step"])
        self.bar.max = max(self.bar.max, self.bar.value)
        if logs["step"] % self.update_every == 0:
            self.header.value = (f"<b>{self.title}</b>: epoch {trainer.epoch + 1} · step {logs['step']} · "
                                 f"loss {logs['loss']:.4f} · lr {logs['lr']:.3g}")

    def on_epoch_end(self, trainer: "Trainer", logs: dict[str, Any]) -> None:
        if self.box is None:
            self._printer.on_epoch_end(trainer, logs)
            return
        from tutorlib.viz import plot_history
        from tutorlib.widgets.redraw import redraw

        parts = [f"{k} {v:.4f}" for k, v in logs.items() if k not in ("epoch", "seconds", "lr") and isinstance(v, float)]
        self.header.value = f"<b>{self.title}</b>: epoch {int(logs['epoch']) + 1} done · " + " · ".join(parts)
        redraw(self.plot, plot_history(trainer.history, title=self.title))
