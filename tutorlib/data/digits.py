"""scikit-learn's bundled 8×8 handwritten digits as image tensors with a fixed train/val/test split.

>>> from tutorlib.data import load_digits
>>> train = load_digits("train")
>>> x, y = train[0]; tuple(x.shape), int(y) in range(10)
((1, 8, 8), True)
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from tutorlib.data.splits import split_indices

__all__ = ["load_digits", "DIGITS_SHAPE"]

DIGITS_SHAPE = (1, 8, 8)


def load_digits(split: str = "train", flat: bool = False, limit: int | None = None) -> TensorDataset:
    """Return the digits ``split`` ('train' 70 %, 'val' 15 %, 'test' 15 %, or 'all') as a ``TensorDataset``.

    Images are float32 in [0, 1] of shape (1, 8, 8) (or (64,) with ``flat=True``); labels are int64.
    The split is fixed (seeded, stratified by class) so every lesson sees the same data.
    ``limit`` keeps the first ``limit`` examples (for smoke runs and small-data experiments).

    >>> ds = load_digits("val", flat=True); ds.tensors[0].shape[1]
    64
    """
    from sklearn.datasets import load_digits as _sk_digits

    bunch = _sk_digits()
    x = bunch.data.astype(np.float32) / 16.0
    y = bunch.target.astype(np.int64)
    idx = split_indices(y, split)
    if limit is not None:
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        idx = idx[:limit]
    xs = torch.from_numpy(x[idx])
    if not flat:
        xs = xs.reshape(-1, *DIGITS_SHAPE)
    return TensorDataset(xs, torch.from_numpy(y[idx]))
