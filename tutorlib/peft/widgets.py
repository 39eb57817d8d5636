"""The lesson's PEFT explorer: choose a method, its size and the LoRA target modules; see the trainable
parameters and the measured peak training memory at once, and the accuracy after a short run.

The logic lives in :class:`PeftExplorer` (plain methods a test can call: :meth:`PeftExplorer.describe`,
:meth:`PeftExplorer.run`); :func:`peft_explorer` returns its ipywidgets container.

>>> from tutorlib.data import load_reviews
>>> ex = PeftExplorer(load_reviews("train", limit=16), load_reviews("val", limit=16), batch_size=8)
>>> ex.method.value = "lora"; ex.size.value = 4
>>> ex.last_summary["trainable"] == 4 * 768 * 12 + 2 * 384 + 2
True
"""

from __future__ import annotations

import time
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
from torch import nn

from tutorlib.peft.compare import METHOD_LABELS, measure_training_memory
from tutorlib.models import trainable_summary
from tutorlib.widgets import redraw
from tutorlib.peft.methods import DEFAULT_LR, MethodConfig, build_model

__all__ = ["PeftExplorer", "peft_explorer", "method_config"]

_SIZES = [1, 2, 4, 8, 16, 32, 64]
_TARGETS = ["query", "key", "value", "dense"]
_SIZE_MEANING = {
    "lora": "rank r", "dora": "rank r", "lora-ours": "rank r", "prefix": "virtual tokens", "prompt": "virtual tokens",
    "houlsby": "bottleneck width", "pfeiffer": "bottleneck width",
}


def method_config(method: str, size: int, targets: tuple[str, ...] | list[str]) -> MethodConfig:
    """The :class:`MethodConfig` the explorer's controls stand for (``size`` is r, tokens or bottleneck width).

    >>> method_config("prefix", 16, ["query"]).num_virtual_tokens
    16
    """
    return MethodConfig(method, r=size, target_modules=tuple(targets) or ("query",), num_virtual_tokens=size,
                        bottleneck=size)


class PeftExplorer:
    """Controls + outputs around :func:`~tutorlib.peft.build_model`; every control change calls :meth:`describe`.

    ``train``/``val`` hold ``(text, label)`` items for the short run (keep them small: the run trains
    one epoch on all of ``train``). ``encoder`` is copied for every model (default: the bundled MiniLM).
    """

    def __init__(self, train: Any, val: Any, encoder: nn.Module | None = None, batch_size: int = 16,
                 max_length: int = 64, epochs: int = 1, num_labels: int = 2) -> None:
        from tutorlib.data import text_collate
        from tutorlib.models import load_encoder, load_tokenizer

        if len(train) == 0 or len(val) == 0:
            raise ValueError("train and val must each hold at least one (text, label) example")
        self.train_data, self.val_data = train, val
        self.encoder = encoder if encoder is not None else load_encoder()
        self.collate = text_collate(load_tokenizer(), max_length)
        self.batch_size, self.epochs, self.num_labels = batch_size, epochs, num_labels
        self.probe = [train[i] for i in range(min(batch_size, len(train)))]
        self.method = widgets.Dropdown(options=[(METHOD_LABELS[m], m) for m in
                                                ("lora", "dora", "lora-ours", "ia3", "prefix", "prompt", "houlsby",
                                                 "pfeiffer", "head", "full")],
                                       value="lora", description="method")
        self.size = widgets.SelectionSlider(options=_SIZES, value=8, description="r / size")
        self.targets = widgets.SelectMultiple(options=_TARGETS, value=("query", "value"), rows=4,
                                              description="LoRA targets")
        self.button = widgets.Button(description="Train briefly", icon="play", button_style="primary")
        self.info = widgets.Output()
        self.result = widgets.Output()
        self.last_summary: dict[str, Any] = {}
        self.last_result: dict[str, Any] = {}
        self._full: dict[str, float] | None = None
        self._cache: dict[tuple, dict[str, Any]] = {}
        for w in (self.method, self.size, self.targets):
            w.observe(lambda change: self.describe(), names="value")
        self.button.on_click(lambda _: self.run())
        controls = widgets.HBox([widgets.VBox([self.method, self.size, self.button]), self.targets])
        self.widget = widgets.VBox([controls, self.info, self.result])
        self.widget.add_class("tutorlib-widget")
        self.describe()

    # ------------------------------------------------------------------ logic
    def config(self) -> MethodConfig:
        """The configuration the controls currently describe."""
        return method_config(self.method.value, int(self.size.value), tuple(self.targets.value))

    def _measure(self, cfg: MethodConfig) -> dict[str, Any]:
        key = (cfg.method, cfg.r, cfg.target_modules)
        if key not in self._cache:
            model = build_model(cfg, self.num_labels, encoder=self.encoder)
            summary = trainable_summary(model)
            peak = measure_training_memory(model, self.probe, lr=DEFAULT_LR[cfg.method], collate_fn=self.collate,
                                           device="cpu")
            self._cache[key] = {**summary, "peak_bytes": peak}
        return dict(self._cache[key])

    def describe(self) -> dict[str, Any]:
        """Measure trainable parameters and one-step peak memory for the current controls, and draw them next to full fine-tuning."""
        cfg = self.config()
        self.targets.disabled = cfg.method not in ("lora", "dora", "lora-ours")
        self.size.disabled = cfg.method not in _SIZE_MEANING
        if self._full is None:
            self._full = self._measure(MethodConfig("full"))
        if cfg.method in ("lora", "dora", "lora-ours") and not self.targets.value:
            redraw(self.info, "choose at least one target module")
            self.last_summary = {}
            return {}
        stats = self._measure(cfg)
        stats["method"] = cfg.method
        self.last_summary = stats
        meaning = _SIZE_MEANING.get(cfg.method, "(no size setting)")
        text = (f"{METHOD_LABELS[cfg.method]} — size = {meaning} {cfg.r if cfg.method in _SIZE_MEANING else ''}: "
                f"{int(stats['trainable']):,} trainable parameters ({stats['percent']:.3f} % of "
                f"{int(stats['total']):,}); peak training memory {stats['peak_bytes'] / 2**20:.0f} MiB "
                f"(full fine-tuning: {self._full['peak_bytes'] / 2**20:.0f} MiB)")
        fig, axes = plt.subplots(1, 2, figsize=(9, 2.2))
        names = [METHOD_LABELS[cfg.method], "full fine-tuning"]
        axes[0].barh(names, [stats["trainable"], self._full["trainable"]], color=["C0", "C7"])
        axes[0].set_xscale("log")
        axes[0].set_xlabel("trainable parameters (log scale)")
        axes[0].set_title("what trains")
        axes[1].barh(names, [stats["peak_bytes"] / 2**20, self._full["peak_bytes"] / 2**20], color=["C1", "C7"])
        axes[1].set_xlabel("peak memory of one training step (MiB)")
        axes[1].set_title("memory")
        fig.tight_layout()
        redraw(self.info, text, fig)
        return stats

    def run(self) -> dict[str, Any]:
        """Train the current configuration for ``epochs`` on ``train`` and show validation accuracy and the loss curve."""
        from tutorlib.runtime import seed_everything
        from tutorlib.train import Trainer

        cfg = self.config()
        seed_everything(0)
        model = build_model(cfg, self.num_labels, encoder=self.encoder)
        trainer = Trainer(model, lr=DEFAULT_LR[cfg.method], device="cpu", batch_size=self.batch_size,
                          collate_fn=self.collate, progress=False, log=False)
        self.button.disabled = True
        t0 = time.perf_counter()
        try:
            redraw(self.result, f"training {METHOD_LABELS[cfg.method]} on {len(self.train_data)} examples …")
            history = trainer.fit(self.train_data, self.val_data, epochs=self.epochs)
        finally:
            self.button.disabled = False
        seconds = time.perf_counter() - t0
        acc = float(history["val_accuracy"][-1])
        self.last_result = {"method": cfg.method, "val_accuracy": acc, "seconds": seconds,
                            "losses": [s["loss"] for s in history.steps]}
        text = (f"{METHOD_LABELS[cfg.method]}: validation accuracy {100 * acc:.1f} % on {len(self.val_data)} "
                f"examples after {self.epochs} epoch(s) on {len(self.train_data)} ({seconds:.1f} s, lr "
                f"{DEFAULT_LR[cfg.method]:g})")
        fig, ax = plt.subplots(figsize=(6, 2.5))
        ax.plot(range(1, len(self.last_result["losses"]) + 1), self.last_result["losses"], marker=".")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("training loss")
        ax.set_title(f"short run: {METHOD_LABELS[cfg.method]}")
        fig.tight_layout()
        redraw(self.result, text, fig)
        return self.last_result


def peft_explorer(train: Any, val: Any, **kwargs: Any) -> widgets.VBox:
    """The explorer's widget (see :class:`PeftExplorer` for the arguments).

    >>> from tutorlib.data import load_reviews
    >>> box = peft_explorer(load_reviews("train", limit=8), load_reviews("val", limit=8), batch_size=8)
    >>> "tutorlib-widget" in box._dom_classes
    True
    """
    return PeftExplorer(train, val, **kwargs).widget
