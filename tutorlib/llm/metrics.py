"""Text-generation metrics from scratch: ROUGE-1/2/L, exact match and token F1 (SQuAD-style normalisation).

ROUGE counts overlapping units between a candidate and a reference: ROUGE-N n-grams (clipped
counts), ROUGE-L the longest common subsequence of tokens. Each returns precision, recall and F1.
Tokens are lower-cased alphanumeric words, as in the reference ``rouge-score`` package without stemming.

>>> rouge_n("the cat sat on the mat", "the cat lay on the mat", 1)["f"]
0.8333333333333334
>>> round(rouge_l("the cat sat on the mat", "the cat lay on the mat")["f"], 3)
0.833
>>> exact_match("The Hotel.", "hotel"), token_f1("a nice quiet hotel", "quiet hotel")
(1.0, 0.8)
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from typing import Sequence

import numpy as np

__all__ = ["rouge_tokens", "rouge_n", "lcs_length", "rouge_l", "rouge_scores", "normalize_answer", "exact_match",
           "token_f1", "corpus_scores", "mean_se", "paired_gain"]

_WORD = re.compile(r"[a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """Lower-cased alphanumeric tokens (punctuation dropped).

    >>> rouge_tokens("It's GREAT, 10/10!")
    ['it', 's', 'great', '10', '10']
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a string, got {type(text).__name__}")
    return _WORD.findall(text.lower())


def _prf(overlap: int, n_cand: int, n_ref: int) -> dict[str, float]:
    p = overlap / n_cand if n_cand else 0.0
    r = overlap / n_ref if n_ref else 0.0
    return {"p": p, "r": r, "f": 2 * p * r / (p + r) if p + r else 0.0}


def rouge_n(candidate: str, reference: str, n: int = 1) -> dict[str, float]:
    """ROUGE-N: n-gram overlap (each n-gram counted at most as often as in the other text).

    >>> rouge_n("a b c", "a b d", 2)
    {'p': 0.5, 'r': 0.5, 'f': 0.5}
    """
    if int(n) < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    c, r = rouge_tokens(candidate), rouge_tokens(reference)
    grams = lambda t: Counter(tuple(t[i:i + n]) for i in range(len(t) - n + 1))  # noqa: E731
    gc, gr = grams(c), grams(r)
    return _prf(sum((gc & gr).values()), sum(gc.values()), sum(gr.values()))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (dynamic programming, O(len a · len b)).

    >>> lcs_length("abcde", "ace")
    3
    """
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(candidate: str, reference: str) -> dict[str, float]:
    """ROUGE-L: precision LCS/len(candidate), recall LCS/len(reference), and their F1.

    >>> rouge_l("police killed the gunman", "the gunman was shot by police")["r"]
    0.3333333333333333
    """
    c, r = rouge_tokens(candidate), rouge_tokens(reference)
    return _prf(lcs_length(c, r), len(c), len(r))


def rouge_scores(candidate: str, reference: str) -> dict[str, float]:
    """F1 of ROUGE-1, ROUGE-2 and ROUGE-L in one dict.

    >>> rouge_scores("a b", "a b")
    {'rouge1': 1.0, 'rouge2': 1.0, 'rougeL': 1.0}
    """
    return {"rouge1": rouge_n(candidate, reference, 1)["f"], "rouge2": rouge_n(candidate, reference, 2)["f"],
            "rougeL": rouge_l(candidate, reference)["f"]}


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles (a, an, the), single spaces.

    >>> normalize_answer("The  Room, sadly!")
    'room sadly'
    """
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised prediction equals the normalised reference, else 0.0.

    >>> exact_match("the room", "Room!")
    1.0
    """
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 between normalised prediction and reference.

    >>> token_f1("cold soup", "soup")
    0.6666666666666666
    """
    p, r = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not p or not r:
        return float(p == r)
    common = sum((Counter(p) & Counter(r)).values())
    return _prf(common, len(p), len(r))["f"]


def corpus_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1, exact match and token F1 over paired lists.

    >>> corpus_scores(["a b"], ["a b"])["exact_match"]
    1.0
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references: they must pair up")
    if not predictions:
        raise ValueError("no predictions to score")
    rows = [dict(rouge_scores(p, r), exact_match=exact_match(p, r), token_f1=token_f1(p, r))
            for p, r in zip(predictions, references)]
    return {k: sum(row[k] for row in rows) / len(rows) for k in rows[0]}


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (sd / √n) of per-example scores.

    >>> [round(x, 4) for x in mean_se([1.0, 0.0, 1.0, 0.0])]
    [0.5, 0.2887]
    """
    x = np.asarray(values, dtype=float).ravel()
    if x.size < 2:
        raise ValueError(f"a standard error needs at least 2 scores, got {x.size}")
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))


def paired_gain(system: Sequence[float], baseline: Sequence[float]) -> tuple[float, float]:
    """Mean of ``system[i] - baseline[i]`` over the same examples and its paired standard error ``sd(d) / √n``.

    Pairing removes the spread of example difficulty, which both methods share, from the error; a gain is
    claimed when it is at least two paired standard errors.

    >>> [round(x, 4) for x in paired_gain([1.0, 0.75, 0.5], [0.5, 0.5, 0.5])]
    [0.25, 0.1443]
    """
    a, b = np.asarray(system, dtype=float).ravel(), np.asarray(baseline, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired scores must cover the same examples (same questions), got {a.size} and {b.size} scores")
    return mean_se(a - b)
