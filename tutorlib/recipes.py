"""Ready-made training recipes behind ``tutorlib train RECIPE``: model, data and sensible defaults.

>>> from tutorlib.recipes import RECIPES, build_recipe
>>> sorted(RECIPES)
['digits-cnn', 'digits-mlp', 'reviews-minilm']
>>> r = build_recipe("digits-mlp", limit=64); len(r.train) <= 64
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover - the recipes import torch only when one is built
    from torch import nn
    from torch.utils.data import Dataset

__all__ = ["Recipe", "RECIPES", "build_recipe"]


@dataclass
class Recipe:
    """A model, its train/val data and the trainer defaults (lr, batch size, epochs, collate)."""

    name: str
    model: nn.Module
    train: Dataset
    val: Dataset
    lr: float
    batch_size: int
    epochs: int
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)


def _digits_mlp(limit: int | None) -> Recipe:
    from tutorlib.data import load_digits
    from tutorlib.models import MLP

    return Recipe("digits-mlp", MLP(64, [128, 64], 10), load_digits("train", limit=limit),
                  load_digits("val", limit=limit), lr=3e-3, batch_size=64, epochs=10)


def _digits_cnn(limit: int | None) -> Recipe:
    from tutorlib.data import load_digits
    from tutorlib.models import SmallCNN

    return Recipe("digits-cnn", SmallCNN(), load_digits("train", limit=limit),
                  load_digits("val", limit=limit), lr=3e-3, batch_size=64, epochs=8)


def _reviews_minilm(limit: int | None) -> Recipe:
    from tutorlib.data import load_reviews, text_collate
    from tutorlib.models import MiniLMClassifier, load_tokenizer

    tok = load_tokenizer()
    return Recipe("reviews-minilm", MiniLMClassifier(2), load_reviews("train", limit=limit),
                  load_reviews("val", limit=limit), lr=5e-5, batch_size=32, epochs=3,
                  trainer_kwargs={"collate_fn": text_collate(tok, max_length=64), "metrics": ("accuracy", "f1")})


RECIPES: dict[str, Callable[[int | None], Recipe]] = {
    "digits-mlp": _digits_mlp,
    "digits-cnn": _digits_cnn,
    "reviews-minilm": _reviews_minilm,
}


def build_recipe(name: str, limit: int | None = None) -> Recipe:
    """Build recipe ``name`` (optionally on the first ``limit`` examples of each split).

    >>> build_recipe("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown recipe 'nope': choose one of digits-cnn, digits-mlp, reviews-minilm
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}: choose one of {', '.join(sorted(RECIPES))}")
    return RECIPES[name](limit)
