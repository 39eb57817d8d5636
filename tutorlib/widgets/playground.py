"""Lesson 00's training playground: choose width, learning rate and epochs, press Train, see the curves.

The work is done by :func:`run_playground` (a plain function, testable without a browser); the widget
only wires sliders and a button to it.

>>> from tutorlib.widgets.playground import run_playground
>>> result = run_playground(hidden=16, lr=1e-2, epochs=1, limit=128)
>>> 0.0 <= result["val_accuracy"] <= 1.0
True
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_playground", "training_playground"]


def run_playground(hidden: int = 64, lr: float = 3e-3, epochs: int = 3, limit: int | None = None,
                   seed: int = 0) -> dict[str, Any]:
    """Train a digits MLP with one hidden layer of ``hidden`` units; return its history and final scores.

    >>> run_playground(hidden=8, lr=1e-2, epochs=1, limit=64)["epochs"]
    1
    """
    from tutorlib.data import load_digits
    from tutorlib.models import MLP
    from tutorlib.runtime import seed_everything
    from tutorlib.train import Trainer

    if hidden < 1 or epochs < 1 or lr <= 0:
        raise ValueError(f"need hidden ≥ 1, epochs ≥ 1 and lr > 0; got hidden={hidden}, epochs={epochs}, lr={lr}")
    seed_everything(seed)
    trainer = Trainer(MLP(64, [hidden], 10), lr=lr, batch_size=32, progress=False, log=False, seed=seed)
    history = trainer.fit(load_digits("train", limit=limit), load_digits("val", limit=limit), epochs=epochs)
    return {"history": history, "epochs": epochs, "val_accuracy": history.last("val_accuracy"),
            "val_loss": history.last("val_loss"), "train_loss": history.last("train_loss")}


def training_playground(limit: int | None = None):  # noqa: ANN201 - returns an ipywidgets.VBox
    """Sliders for hidden units, log10 learning rate and epochs, a Train button, and an output with the curves.

    >>> box = training_playground(limit=64)
    >>> type(box).__name__
    'VBox'
    """
    import ipywidgets as w

    from tutorlib.viz import plot_history
    from tutorlib.widgets.redraw import redraw

    hidden = w.IntSlider(value=64, min=4, max=256, step=4, description="hidden units", style={"description_width": "initial"})
    log_lr = w.FloatSlider(value=-2.5, min=-4.0, max=-0.5, step=0.25, description="log10 lr", readout_format=".2f")
    epochs = w.IntSlider(value=3, min=1, max=10, description="epochs")
    button = w.Button(description="Train", button_style="primary", icon="play")
    status = w.HTML("Press <b>Train</b> to train a digits MLP with these settings.")
    out = w.Output()
    runs = [0]

    def on_click(_: Any = None) -> None:
        button.disabled = True
        runs[0] += 1
        status.value = f"run {runs[0]}: training…"
        try:
            r = run_playground(hidden.value, 10 ** log_lr.value, epochs.value, limit=limit)
            status.value = (f"run {runs[0]}: hidden={hidden.value}, lr={10 ** log_lr.value:.2g}, epochs={epochs.value}: "
                            f"<b>val accuracy {r['val_accuracy']:.1%}</b>, val loss {r['val_loss']:.3f}")
            redraw(out, plot_history(r["history"], title=f"MLP({hidden.value}) at lr {10 ** log_lr.value:.2g}"))
        finally:
            button.disabled = False

    button.on_click(on_click)
    box = w.VBox([w.HBox([hidden, log_lr, epochs]), button, status, out])
    box.add_class("tutorlib-widget")
    box.run = on_click  # lets tests and the notebook trigger a run without a browser
    return box
