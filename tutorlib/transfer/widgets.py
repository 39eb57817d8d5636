"""Fine-tuning explorer: pick how many top layers to unfreeze and the learning rate, train, compare the runs.

:class:`FineTuneExplorer` holds a slider for ``k`` (0 = linear probe … L = every layer), a log slider
for the learning rate and a *Train* button; each click fine-tunes a fresh MiniLM classifier with the
course Trainer on a small training set and adds a point (validation accuracy vs trainable
parameters, labelled with k and lr) to the plot. :meth:`FineTuneExplorer.run` is the plain function
the button calls, so tests can drive it.

>>> from tutorlib.data import load_reviews
>>> ex = FineTuneExplorer(load_reviews("train", limit=8), load_reviews("val", limit=8), epochs=1, max_length=16)
>>> ex.k.max
6
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from tutorlib.transfer.freeze import count_trainable, encoder_layers, unfreeze_top
from tutorlib.widgets import redraw

__all__ = ["FineTuneExplorer", "finetune_explorer", "plot_runs"]


def plot_runs(runs: list[dict[str, Any]], ax: Any = None, title: str = "Fine-tuning runs") -> Any:
    """Validation accuracy against trainable parameters (log scale), one labelled point per run; returns the axes.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> plot_runs([{"k": 0, "lr": 1e-3, "trainable": 770, "val_accuracy": 0.6, "seconds": 1.0}]).get_ylabel()
    'validation accuracy'
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.6))
    for r in runs:
        ax.scatter(r["trainable"], r["val_accuracy"], s=40)
        ax.annotate(f"k={r['k']}, lr={r['lr']:.0e}", (r["trainable"], r["val_accuracy"]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0.0, 1.05)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return ax


class FineTuneExplorer:
    """Sliders for the number of unfrozen layers and the learning rate, a Train button, and a plot of all runs.

    ``make_model()`` builds a fresh classifier (default: the pretrained ``MiniLMClassifier(2)``);
    ``train``/``val`` are ``(text, label)`` datasets. :attr:`runs` lists every run's ``k``, ``lr``,
    ``trainable``, ``seconds``, ``val_accuracy``; :attr:`box` is the widget.
    """

    def __init__(self, train: Dataset, val: Dataset, *, make_model: Callable[[], nn.Module] | None = None,
                 tokenizer: Any = None, epochs: int = 1, max_length: int = 32, batch_size: int = 16,
                 seed: int = 0, device: str | torch.device | None = None) -> None:
        import ipywidgets as w

        from tutorlib.data import text_collate
        from tutorlib.models import MiniLMClassifier, load_tokenizer

        if len(train) == 0 or len(val) == 0:  # type: ignore[arg-type]
            raise ValueError("train and val must not be empty")
        self.make_model = make_model or (lambda: MiniLMClassifier(2))
        self.train, self.val, self.epochs, self.batch_size, self.seed, self.device = train, val, epochs, batch_size, seed, device
        self.collate = text_collate(tokenizer or load_tokenizer(), max_length=max_length)
        n_layers = len(encoder_layers(self.make_model()))
        self.k = w.IntSlider(value=min(2, n_layers), min=0, max=n_layers, description="unfrozen k", continuous_update=False)
        self.lr = w.FloatLogSlider(value=1e-4, base=10, min=-5, max=-2, step=0.25, description="learning rate",
                                   readout_format=".0e", continuous_update=False)
        self.button = w.Button(description="Train", button_style="primary", icon="play")
        self.status = w.HTML(value="Pick k and the learning rate, then press <b>Train</b>.")
        self.out = w.Output()
        self.runs: list[dict[str, Any]] = []
        self.last_figure: Any = None
        self.box = w.VBox([w.HBox([self.k, self.lr, self.button]), self.status, self.out])
        self.box.add_class("tutorlib-widget")
        self.button.on_click(lambda _: self.run())

    def run(self, k: int | None = None, lr: float | None = None) -> dict[str, Any]:
        """Fine-tune with ``k`` unfrozen layers at ``lr`` (default: the sliders), record and plot the result."""
        from tutorlib.runtime import seed_everything
        from tutorlib.train import Trainer

        k = int(self.k.value if k is None else k)
        lr = float(self.lr.value if lr is None else lr)
        self.status.value = f"training with k={k}, lr={lr:.0e}…"
        seed_everything(self.seed)
        model = unfreeze_top(self.make_model(), k)
        t0 = time.perf_counter()
        trainer = Trainer(model, lr=lr, batch_size=self.batch_size, collate_fn=self.collate, device=self.device,
                          seed=self.seed, progress=False, log=False)
        trainer.fit(self.train, epochs=self.epochs)
        seconds = time.perf_counter() - t0
        acc = trainer.evaluate(self.val)["val_accuracy"]
        result = {"k": k, "lr": lr, "trainable": count_trainable(model), "seconds": seconds, "val_accuracy": acc}
        self.runs.append(result)
        self.status.value = (f"k={k}, lr={lr:.0e}: validation accuracy <b>{acc:.3f}</b>, "
                             f"{result['trainable']:,} trainable parameters, {seconds:.1f} s")
        self.redraw()
        return result

    def redraw(self) -> None:
        """Draw every run so far into the output area."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        plot_runs(self.runs, ax=ax)
        self.last_figure = fig
        redraw(self.out, fig)


def finetune_explorer(train: Dataset, val: Dataset, **kwargs: Any) -> Any:
    """The explorer's widget box (see :class:`FineTuneExplorer` for the arguments)."""
    return FineTuneExplorer(train, val, **kwargs).box
