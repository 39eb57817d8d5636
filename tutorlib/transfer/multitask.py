"""Multi-task fine-tuning: one shared MiniLM encoder, two heads (sentiment and domain), a weighted loss.

Both tasks read the same mean-pooled sentence embedding; the loss is ``Σ w_t · CE_t`` with fixed
weights, or learned through homoscedastic uncertainty (Kendall et al. 2018, :class:`UncertaintyWeights`).
:func:`multitask_step` plugs the loss into the course Trainer as a ``step_fn``; its ``report``
argument picks which task's logits the Trainer's metrics and ``predict`` see.

>>> from tutorlib.data import load_reviews
>>> ds = MultiTaskReviews(load_reviews("val", limit=4)); text, sentiment, domain = ds[0]
>>> isinstance(text, str), sentiment in (0, 1), 0 <= domain < len(DOMAINS)
(True, True, True)
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

__all__ = ["DOMAINS", "TASKS", "MultiTaskReviews", "domain_dataset", "multitask_collate", "MultiTaskModel",
           "multitask_loss", "UncertaintyWeights", "multitask_step"]

DOMAINS: tuple[str, ...] = ("airline", "book", "clothing", "electronics", "hotel", "movie", "restaurant", "software")
TASKS: dict[str, int] = {"sentiment": 2, "domain": len(DOMAINS)}


def _domain_id(name: str) -> int:
    if name not in DOMAINS:
        raise ValueError(f"unknown domain {name!r}: expected one of {', '.join(DOMAINS)}")
    return DOMAINS.index(name)


class MultiTaskReviews(Dataset):
    """Reviews with both labels: items ``(text, sentiment, domain_id)`` (domain ids index :data:`DOMAINS`).

    >>> from tutorlib.data import ReviewsDataset
    >>> MultiTaskReviews(ReviewsDataset(["ok"], [1], ["hotel"]))[0]
    ('ok', 1, 4)
    """

    def __init__(self, reviews: Any) -> None:
        if not getattr(reviews, "domains", None):
            raise ValueError("the reviews need a .domains list (use tutorlib.data.load_reviews)")
        self.texts = list(reviews.texts)
        self.labels = list(reviews.labels)
        self.domain_ids = [_domain_id(d) for d in reviews.domains]

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> tuple[str, int, int]:
        return self.texts[i], self.labels[i], self.domain_ids[i]


def domain_dataset(reviews: Any) -> Any:
    """The same reviews labelled by domain (for a single-task domain classifier): items ``(text, domain_id)``.

    >>> from tutorlib.data import ReviewsDataset
    >>> domain_dataset(ReviewsDataset(["ok"], [1], ["book"]))[0]
    ('ok', 1)
    """
    from tutorlib.data import ReviewsDataset

    ids = [_domain_id(d) for d in reviews.domains]
    return ReviewsDataset(list(reviews.texts), ids, list(reviews.domains), label_names=DOMAINS)


def multitask_collate(tokenizer: Any, max_length: int = 64) -> Callable[[Sequence[tuple[str, int, int]]], dict]:
    """Collate ``(text, sentiment, domain)`` items into ``{input_ids, attention_mask, labels, domain}``.

    >>> from tutorlib.models import load_tokenizer
    >>> sorted(multitask_collate(load_tokenizer())([("good", 1, 0)]))
    ['attention_mask', 'domain', 'input_ids', 'labels']
    """
    if max_length <= 0:
        raise ValueError(f"max_length must be positive, got {max_length}")

    def collate(items: Sequence[tuple[str, int, int]]) -> dict:
        enc = tokenizer([t for t, _, _ in items], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "labels": torch.tensor([s for _, s, _ in items], dtype=torch.long),
                "domain": torch.tensor([d for _, _, d in items], dtype=torch.long)}

    return collate


class MultiTaskModel(nn.Module):
    """A shared encoder (the pretrained MiniLM by default), mean pooling, and one linear head per task.

    ``forward(input_ids, attention_mask)`` returns ``{task: logits}``.

    >>> from tutorlib.models import load_tokenizer
    >>> m = MultiTaskModel(); b = load_tokenizer()(["fine"], return_tensors="pt")
    >>> {k: tuple(v.shape) for k, v in m(b["input_ids"], b["attention_mask"]).items()}
    {'sentiment': (1, 2), 'domain': (1, 8)}
    """

    def __init__(self, tasks: Mapping[str, int] | None = None, encoder: nn.Module | None = None,
                 dropout: float = 0.1) -> None:
        from tutorlib.models import load_encoder

        super().__init__()
        tasks = dict(tasks or TASKS)
        if not tasks or any(n < 2 for n in tasks.values()):
            raise ValueError(f"tasks must map names to class counts ≥ 2, got {tasks}")
        self.encoder = encoder if encoder is not None else load_encoder()
        hidden = self.encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, n) for name, n in tasks.items()})

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled sentence embeddings (B, hidden) shared by all heads."""
        from tutorlib.models import mean_pool

        return mean_pool(self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        z = self.dropout(self.embed(input_ids, attention_mask))
        return {name: head(z) for name, head in self.heads.items()}


def multitask_loss(logits: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor],
                   weights: Mapping[str, float] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of per-task cross-entropies; returns ``(total, {task: loss value})``.

    Missing weights default to 1. Every task in ``logits`` needs a target.

    >>> lg = {"a": torch.zeros(2, 2), "b": torch.zeros(2, 4)}; y = {"a": torch.tensor([0, 1]), "b": torch.tensor([0, 3])}
    >>> total, parts = multitask_loss(lg, y, {"a": 1.0, "b": 0.5}); round(float(total), 4), round(parts["b"], 4)
    (1.3863, 1.3863)
    """
    if not logits:
        raise ValueError("logits is empty: expected {task: (B, C) logits}")
    weights = dict(weights or {})
    unknown = set(weights) - set(logits)
    if unknown:
        raise ValueError(f"weights for unknown task(s) {sorted(unknown)}; tasks are {sorted(logits)}")
    total: torch.Tensor | None = None
    parts: dict[str, float] = {}
    for task, lg in logits.items():
        if task not in targets:
            raise KeyError(f"no targets for task {task!r}: pass targets for {sorted(logits)}")
        loss = F.cross_entropy(lg.float(), targets[task])
        parts[task] = float(loss.detach())
        term = weights.get(task, 1.0) * loss
        total = term if total is None else total + term
    return total, parts  # type: ignore[return-value]


class UncertaintyWeights(nn.Module):
    """Learned task weights (Kendall, Gal & Cipolla 2018): ``Σ exp(−s_t) · L_t + s_t`` with one ``s_t = log σ_t²`` per task.

    Add its parameters to the optimizer; tasks with noisier losses get smaller weights.

    >>> uw = UncertaintyWeights(["a", "b"]); uw({"a": torch.tensor(1.0), "b": torch.tensor(2.0)}).item()
    3.0
    """

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("need at least one task name")
        self.log_vars = nn.ParameterDict({t: nn.Parameter(torch.zeros(())) for t in tasks})

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = set(self.log_vars) - set(losses)
        if missing:
            raise KeyError(f"missing losses for task(s) {sorted(missing)}")
        return sum(torch.exp(-self.log_vars[t]) * losses[t] + self.log_vars[t] for t in self.log_vars)  # type: ignore[return-value]

    def weights(self) -> dict[str, float]:
        """The current effective weights ``exp(−s_t)``."""
        return {t: float(torch.exp(-s.detach())) for t, s in self.log_vars.items()}


def multitask_step(weights: Mapping[str, float] | None = None, report: str = "sentiment",
                   target_keys: Mapping[str, str] | None = None) -> Callable[[Any, dict], dict]:
    """A Trainer ``step_fn``: run the multi-task model on a batch from :func:`multitask_collate` and weight the losses.

    The returned ``logits``/``targets`` are those of the ``report`` task, so ``Trainer.evaluate``'s
    accuracy and ``Trainer.predict`` refer to it. ``target_keys`` maps task → batch key
    (default: sentiment → ``labels``, domain → ``domain``).

    >>> step = multitask_step({"sentiment": 1.0, "domain": 0.5}); callable(step)
    True
    """
    keys = dict(target_keys or {"sentiment": "labels", "domain": "domain"})
    if report not in keys:
        raise ValueError(f"report must be one of {sorted(keys)}, got {report!r}")

    def step(trainer: Any, batch: dict) -> dict:
        logits = trainer.model(batch["input_ids"], batch["attention_mask"])
        targets = {task: batch[key] for task, key in keys.items() if task in logits}
        total, parts = multitask_loss(logits, targets, weights)
        return {"loss": total, "logits": logits[report], "targets": targets[report], "parts": parts}

    return step
