"""The course's own labelled review set (1,600 sentences, 8 domains, balanced) shipped as package data.

Written for the course: natural sentences with negations and mixed opinions, a fixed
train/val/test split (70/15/15 per domain and label) and a ``domain`` column for per-group metrics.

>>> from tutorlib.data import load_reviews
>>> train = load_reviews("train")
>>> text, label = train[0]; isinstance(text, str), label in (0, 1)
(True, True)
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from torch.utils.data import Dataset

__all__ = ["ReviewsDataset", "load_reviews", "REVIEW_LABELS", "reviews_path"]

REVIEW_LABELS = ("negative", "positive")


def reviews_path() -> Path:
    """Path of the bundled ``reviews.csv``.

    >>> reviews_path().name
    'reviews.csv'
    """
    return Path(str(resources.files("tutorlib.data").joinpath("reviews.csv")))


@dataclass
class ReviewsDataset(Dataset):
    """Texts with integer labels (0 = negative, 1 = positive) and their domains; items are ``(text, label)``.

    >>> ds = ReviewsDataset(["great", "awful"], [1, 0], ["book", "book"]); len(ds)
    2
    """

    texts: list[str]
    labels: list[int]
    domains: list[str] = field(default_factory=list)
    label_names: tuple[str, ...] = REVIEW_LABELS

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels: they must match")
        if self.domains and len(self.domains) != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {len(self.domains)} domains: they must match")

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> tuple[str, int]:
        return self.texts[i], self.labels[i]

    def subset(self, n: int) -> "ReviewsDataset":
        """The first ``n`` examples (already shuffled, so classes stay mixed).

        >>> ReviewsDataset(["a", "b"], [0, 1]).subset(1).texts
        ['a']
        """
        return ReviewsDataset(self.texts[:n], self.labels[:n], self.domains[:n], self.label_names)


def load_reviews(split: str = "train", path: str | Path | None = None, limit: int | None = None) -> ReviewsDataset:
    """Load ``split`` ('train', 'val', 'test' or 'all') of the bundled reviews (or of a CSV with the same columns).

    >>> len(load_reviews("test")) > 0
    True
    """
    if split not in ("train", "val", "test", "all"):
        raise ValueError(f"unknown split {split!r}: use 'train', 'val', 'test' or 'all'")
    csv_path = Path(path) if path is not None else reviews_path()
    if not csv_path.exists():
        raise FileNotFoundError(
            f"review data not found at {csv_path}; reinstall the package (pip install -e .) "
            "or pass path= to a CSV with columns text,label,domain,split"
        )
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"text", "label", "domain", "split"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{csv_path} lacks column(s) {sorted(missing)}; expected text,label,domain,split")
        rows = [r for r in reader if split == "all" or r["split"] == split]
    texts, labels, domains = [], [], []
    for lineno, r in enumerate(rows, start=2):
        if r["label"] not in REVIEW_LABELS:
            raise ValueError(f"{csv_path}: row {lineno} has label {r['label']!r}; expected one of {REVIEW_LABELS}")
        texts.append(r["text"])
        labels.append(REVIEW_LABELS.index(r["label"]))
        domains.append(r["domain"])
    # Deterministic interleaving so that limit=… keeps both classes and several domains.
    import random

    order = list(range(len(texts)))
    random.Random(0).shuffle(order)
    if limit is not None:
        order = order[:limit]
    return ReviewsDataset([texts[i] for i in order], [labels[i] for i in order], [domains[i] for i in order])
