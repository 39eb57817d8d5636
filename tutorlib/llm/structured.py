"""Scoring structured (JSON) answers field by field, and the paired standard error of a gain.

An answer that is not a JSON object scores 0 on every field; a field is right when its value equals the
reference exactly (strings compared after stripping and lower-casing). Each example's score is the mean over
its fields, so two methods evaluated on the same examples can be compared example by example:
:func:`paired_gain` returns the mean difference and its standard error, the evidence a claimed gain needs
(lesson 11 claims one only when it is at least two paired standard errors).

>>> parse_json_object('Sure: {"a": 1} bye')
{'a': 1}
>>> field_scores({"a": 1, "b": "X "}, {"a": 1, "b": "x"})
{'a': 1.0, 'b': 1.0}
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from tutorlib.llm.metrics import paired_gain  # re-exported: the lessons import it from here

__all__ = ["parse_json_object", "field_scores", "score_answers", "paired_gain", "majority_answer", "classifier_answers"]


def parse_json_object(text: str) -> dict | None:
    """The first JSON object in ``text`` (from its first ``{`` to the matching ``}``), or ``None`` if there is none.

    >>> parse_json_object('{"a": [1, 2]}'), parse_json_object("no json"), parse_json_object('{"a": ')
    ({'a': [1, 2]}, None, None)
    """
    if not isinstance(text, str):
        raise TypeError(f"expected the model's answer as a string, got {type(text).__name__}")
    start = text.find("{")
    while start != -1:
        try:
            obj, _ = json.JSONDecoder().raw_decode(text[start:])
            if isinstance(obj, dict):
                return obj
        except json.JSONDecodeError:
            pass
        start = text.find("{", start + 1)
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().lower() == b.strip().lower()
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def field_scores(pred: dict | None, gold: dict) -> dict[str, float]:
    """1.0 for each field of ``gold`` whose value ``pred`` gets exactly right, else 0.0 (all 0.0 if ``pred`` is None).

    ``True`` is not ``1`` here: a boolean field needs a JSON boolean.

    >>> field_scores(None, {"a": 1}), field_scores({"a": True}, {"a": 1})
    ({'a': 0.0}, {'a': 0.0})
    """
    if pred is not None and not isinstance(pred, dict):
        raise TypeError(f"pred must be a dict (a parsed answer) or None, got {type(pred).__name__}")
    return {k: float(pred is not None and k in pred and _same(pred[k], v)) for k, v in gold.items()}


def score_answers(answers: Sequence[str | dict | None], golds: Sequence[dict]) -> dict[str, Any]:
    """Per-example scores (mean over fields), per-field accuracy, overall accuracy and the share of valid JSON.

    ``answers`` are raw texts (parsed with :func:`parse_json_object`) or already parsed dicts/None.

    >>> s = score_answers(['{"a": 1, "b": 2}', "oops"], [{"a": 1, "b": 3}, {"a": 1, "b": 2}])
    >>> s["per_example"], s["fields"], s["accuracy"], s["valid"]
    ([0.5, 0.0], {'a': 0.5, 'b': 0.0}, 0.25, 0.5)
    """
    if len(answers) != len(golds):
        raise ValueError(f"{len(answers)} answers but {len(golds)} references: score the same examples")
    if not golds:
        raise ValueError("nothing to score: no examples")
    parsed = [parse_json_object(a) if isinstance(a, str) else a for a in answers]
    rows = [field_scores(p, g) for p, g in zip(parsed, golds)]
    per_example = [sum(r.values()) / len(r) for r in rows]
    keys = list(golds[0])
    return {"per_example": per_example,
            "fields": {k: sum(r[k] for r in rows) / len(rows) for k in keys},
            "accuracy": sum(per_example) / len(per_example),
            "valid": sum(p is not None for p in parsed) / len(parsed)}


def majority_answer(golds: Sequence[dict]) -> dict:
    """The trivial baseline: each field's most common training value (ties: first seen).

    >>> majority_answer([{"s": "pos", "r": 5}, {"s": "neg", "r": 5}, {"s": "neg", "r": 4}])
    {'s': 'neg', 'r': 5}
    """
    if not golds:
        raise ValueError("the majority answer needs at least one example")
    out = {}
    for k in golds[0]:
        counts: dict[str, tuple[int, Any]] = {}
        for g in golds:
            key = json.dumps(g[k])
            counts[key] = (counts.get(key, (0, g[k]))[0] + 1, g[k])
        out[k] = max(counts.values(), key=lambda c: c[0])[1]
    return out


def classifier_answers(train_features: Any, train_golds: Sequence[dict], test_features: Any, fields: Sequence[str], *,
                       fill: dict | None = None, seed: int = 0) -> list[dict]:
    """A classifier baseline: one logistic regression per categorical field on fixed features (e.g. MiniLM
    sentence embeddings); the other fields come from ``fill`` (e.g. :func:`majority_answer`).

    >>> import numpy as np
    >>> X = np.array([[0.0], [0.1], [1.0], [1.1]])
    >>> golds = [{"s": "neg", "p": "x"}, {"s": "neg", "p": "x"}, {"s": "pos", "p": "x"}, {"s": "pos", "p": "x"}]
    >>> classifier_answers(X, golds, np.array([[0.05], [1.05]]), ["s"], fill={"p": "x"})
    [{'s': 'neg', 'p': 'x'}, {'s': 'pos', 'p': 'x'}]
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    train_features, test_features = np.asarray(train_features), np.asarray(test_features)
    if len(train_features) != len(train_golds):
        raise ValueError(f"{len(train_features)} feature rows but {len(train_golds)} training answers: they must match")
    preds: list[dict] = [dict(fill or {}) for _ in range(len(test_features))]
    for f in fields:
        labels = [json.dumps(g[f]) for g in train_golds]
        if len(set(labels)) == 1:
            guess = [labels[0]] * len(test_features)
        else:
            clf = LogisticRegression(max_iter=2000, C=4.0, random_state=seed).fit(train_features, labels)
            guess = list(clf.predict(test_features))
        for p, g in zip(preds, guess):
            p[f] = json.loads(g)
    order = list(train_golds[0]) if train_golds else []
    return [{k: p[k] for k in order if k in p} | {k: v for k, v in p.items() if k not in order} for p in preds]
