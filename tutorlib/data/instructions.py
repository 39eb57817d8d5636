"""The course's own instruction sets: reviews to extract into JSON, and preference pairs over the answers.

Written for the course by ``tutorlib/data/instruction_sets/generate.py`` (rules in ``DATASHEET.md`` beside it):
each review states a product, a sentiment, maybe a rating, the main issue and whether the writer recommends it,
and the answer is that record as compact JSON with field-level ground truth. Training reviews come from five
domains; the held-out split is two other domains (hotels, books), so a gain on it is not a memorised phrasing.

>>> from tutorlib.data.instructions import load_extraction, load_preferences
>>> train, held = load_extraction("train"), load_extraction("heldout")
>>> len(train) >= 300 and len(held) >= 100, sorted({ex.domain for ex in held})
(True, ['book', 'hotel'])
>>> pairs = load_preferences("train"); len(pairs) >= 200 and pairs[0].chosen != pairs[0].rejected
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

__all__ = ["EXTRACTION_FIELDS", "EXTRACTION_CHOICES", "ExtractionExample", "PreferencePair", "load_extraction",
           "load_preferences", "instruction_sets_dir", "datasheet", "char_ngrams", "ngram_jaccard", "max_overlap"]

#: The answer's keys, in the order the answers write them.
EXTRACTION_FIELDS = ("product", "sentiment", "rating", "issue", "would_recommend")
#: The allowed values of every field but ``product`` (a phrase copied from the review).
EXTRACTION_CHOICES: dict[str, tuple[Any, ...]] = {
    "sentiment": ("positive", "negative", "mixed"),
    "rating": (1, 2, 3, 4, 5, None),
    "issue": ("price", "quality", "service", "delay", "none"),
    "would_recommend": (True, False),
}
_SPLITS = ("train", "heldout", "all")


@dataclass(frozen=True)
class ExtractionExample:
    """One review, its reference answer (compact JSON) and the answer's fields as Python values."""

    id: str
    domain: str
    split: str
    review: str
    answer: str
    fields: dict


@dataclass(frozen=True)
class PreferencePair:
    """One review with a preferred (``chosen``) and a worse (``rejected``) answer, and how the worse one is worse."""

    id: str
    domain: str
    split: str
    review: str
    chosen: str
    rejected: str
    rejected_kind: str
    fields: dict


def instruction_sets_dir() -> Path:
    """Folder of the bundled sets, their datasheet and the script that wrote them.

    >>> (instruction_sets_dir() / "DATASHEET.md").exists()
    True
    """
    return Path(str(resources.files("tutorlib.data").joinpath("instruction_sets")))


def datasheet() -> str:
    """The sets' datasheet (how they were written, by which rules, their sizes and splits) as Markdown.

    >>> datasheet().startswith("# Datasheet")
    True
    """
    return (instruction_sets_dir() / "DATASHEET.md").read_text(encoding="utf-8")


def _rows(name: str, split: str, path: str | Path | None) -> list[dict]:
    if split not in _SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {_SPLITS}")
    file = Path(path) if path is not None else instruction_sets_dir() / name
    if not file.exists():
        raise FileNotFoundError(f"{file} not found: reinstall the package (pip install -e .) or run "
                                "python tutorlib/data/instruction_sets/generate.py")
    rows = []
    for lineno, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{file}: line {lineno} is not JSON ({err.msg})") from None
    return [r for r in rows if split == "all" or r["split"] == split]


def load_extraction(split: str = "train", *, limit: int | None = None, path: str | Path | None = None) -> list[ExtractionExample]:
    """Reviews with their reference JSON: ``split`` is 'train' (5 domains), 'heldout' (hotels, books) or 'all'.

    ``limit`` keeps the first ``limit`` after a fixed shuffle, so a small subset still mixes domains and labels.

    >>> ex = load_extraction("heldout", limit=3)[0]
    >>> sorted(ex.fields) == sorted(EXTRACTION_FIELDS), json.loads(ex.answer) == ex.fields
    (True, True)
    """
    rows = _shuffled(_rows("extraction_sft.jsonl", split, path), limit)
    return [ExtractionExample(r["id"], r["domain"], r["split"], r["review"], r["answer"], r["fields"]) for r in rows]


def load_preferences(split: str = "train", *, limit: int | None = None, path: str | Path | None = None) -> list[PreferencePair]:
    """Preference pairs over extraction answers (reviews disjoint from :func:`load_extraction`'s).

    >>> p = load_preferences("heldout", limit=1)[0]
    >>> p.chosen == json.dumps(p.fields), p.rejected_kind.split(":")[0] in (
    ...     "wrong_value", "missing_field", "prose", "chatty", "invented_field")
    (True, True)
    """
    rows = _shuffled(_rows("extraction_prefs.jsonl", split, path), limit)
    return [PreferencePair(r["id"], r["domain"], r["split"], r["review"], r["chosen"], r["rejected"], r["rejected_kind"],
                           r["fields"]) for r in rows]


def _shuffled(rows: list[dict], limit: int | None) -> list[dict]:
    import random

    rows = list(rows)
    random.Random(0).shuffle(rows)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        rows = rows[:limit]
    return rows


def char_ngrams(text: str, n: int = 5) -> set[str]:
    """The set of lower-cased character ``n``-grams of ``text``.

    >>> sorted(char_ngrams("Abcdef", 5))
    ['abcde', 'bcdef']
    """
    t = text.lower()
    return {t[i:i + n] for i in range(len(t) - n + 1)}


def ngram_jaccard(a: str, b: str, n: int = 5) -> float:
    """Jaccard similarity of the character ``n``-gram sets of ``a`` and ``b`` (1 = same set, 0 = nothing shared).

    >>> ngram_jaccard("the room was clean", "the room was clean"), ngram_jaccard("abcdef", "uvwxyz")
    (1.0, 0.0)
    """
    x, y = char_ngrams(a, n), char_ngrams(b, n)
    return len(x & y) / len(x | y) if x or y else 1.0


def max_overlap(queries: Iterable[str], corpus: Iterable[str], n: int = 5) -> tuple[float, str, str]:
    """The most similar (query, corpus text) pair by :func:`ngram_jaccard`: ``(jaccard, query, text)``.

    The leakage check of the held-out split: every held-out review against every training review.

    >>> max_overlap(["a new hotel room"], ["a new hotel room!", "books"])[0] > 0.8
    True
    """
    grams = [(t, char_ngrams(t, n)) for t in corpus]
    best = (0.0, "", "")
    for q in queries:
        qg = char_ngrams(q, n)
        for t, g in grams:
            j = len(qg & g) / len(qg | g) if qg or g else 1.0
            if j > best[0]:
                best = (j, q, t)
    return best
