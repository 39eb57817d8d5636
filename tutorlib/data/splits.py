"""Fixed, stratified train/val/test splits shared by every bundled dataset.

>>> import numpy as np
>>> from tutorlib.data.splits import split_indices
>>> y = np.repeat(np.arange(2), 20)
>>> [len(split_indices(y, s)) for s in ("train", "val", "test")]
[28, 6, 6]
"""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "val", "test", "all")
FRACTIONS = (0.70, 0.15, 0.15)


def split_indices(labels: np.ndarray, split: str, seed: int = 0) -> np.ndarray:
    """Indices of ``split`` in a 70/15/15 split stratified by ``labels`` (same answer every call).

    >>> len(split_indices(np.zeros(100), "all"))
    100
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    labels = np.asarray(labels)
    if split == "all":
        return np.arange(len(labels))
    rng = np.random.RandomState(seed)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        rng.shuffle(members)
        n_train = int(round(FRACTIONS[0] * len(members)))
        n_val = int(round(FRACTIONS[1] * len(members)))
        parts["train"].extend(members[:n_train])
        parts["val"].extend(members[n_train : n_train + n_val])
        parts["test"].extend(members[n_train + n_val :])
    out = np.array(sorted(parts[split]), dtype=np.int64)
    # Shuffle once with a fixed seed so classes are interleaved (useful with limit=…).
    np.random.RandomState(seed + 1).shuffle(out)
    return out
