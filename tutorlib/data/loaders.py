"""Small DataLoader helpers: seeded shuffling, and a collate function that tokenizes text batches.

>>> from tutorlib.data import load_digits, make_loader
>>> xb, yb = next(iter(make_loader(load_digits("val"), batch_size=16)))
>>> tuple(xb.shape)
(16, 1, 8, 8)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["make_loader", "text_collate"]


def make_loader(dataset: Dataset, batch_size: int = 64, shuffle: bool = False, seed: int = 0,
                collate_fn: Callable | None = None, drop_last: bool = False) -> DataLoader:
    """A ``DataLoader`` whose shuffling is seeded (same order every run), single-process for notebooks.

    >>> len(make_loader(torch.utils.data.TensorDataset(torch.zeros(10, 2)), batch_size=4))
    3
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("the dataset is empty: check the split name and any limit= you passed")
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen,
                      collate_fn=collate_fn, drop_last=drop_last)


def text_collate(tokenizer: Any, max_length: int = 64) -> Callable[[Sequence[tuple[str, int]]], dict]:
    """Collate ``(text, label)`` pairs into a tokenized batch dict with ``labels`` (for ``Trainer``).

    >>> from tutorlib.models import load_tokenizer
    >>> batch = text_collate(load_tokenizer())([("good", 1), ("bad", 0)])
    >>> sorted(batch)
    ['attention_mask', 'input_ids', 'labels']
    """
    if max_length <= 0:
        raise ValueError(f"max_length must be positive, got {max_length}")

    def collate(items: Sequence[tuple[str, int]]) -> dict:
        texts = [t for t, _ in items]
        enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        batch["labels"] = torch.tensor([int(y) for _, y in items], dtype=torch.long)
        return batch

    return collate
