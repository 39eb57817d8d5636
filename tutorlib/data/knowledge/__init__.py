"""The Quillhaven handbook: a course-written knowledge base for retrieval-augmented generation (lesson 12).

48 short documents about the shops and workshops of a fictional island town, and 144 questions with short
gold answers, each tied to the document (``doc_id``) and sentence (``evidence``) that supports it. Every
fact is invented by ``python -m tutorlib.data.knowledge.generate`` (seeded), so a language model cannot
answer from pre-training: without retrieval, a question is a guess. Splits are by document: ``tune``
(12 documents, 36 questions: worked examples shown in prompts, tuning) and ``eval`` (36 documents,
108 questions). ``DATASHEET.md`` next to the files describes them.

>>> from tutorlib.data.knowledge import load_documents, load_questions
>>> len(load_documents()), len(load_questions()), len(load_questions("eval"))
(48, 144, 108)
>>> sorted(load_questions("tune")[0])
['answer', 'doc_id', 'evidence', 'id', 'question', 'split', 'type']
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

__all__ = ["knowledge_path", "load_documents", "load_questions", "SPLITS"]

SPLITS = ("tune", "eval")


def knowledge_path(name: str = "documents.jsonl") -> Path:
    """Path of one of the bundled files (``documents.jsonl``, ``questions.jsonl``, ``DATASHEET.md``).

    >>> knowledge_path().name
    'documents.jsonl'
    """
    return Path(str(resources.files("tutorlib.data.knowledge").joinpath(name)))


def _read(name: str, split: str | None) -> list[dict]:
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {SPLITS} or None for all")
    with open(knowledge_path(name), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if split is None or r["split"] == split]


def load_documents(split: str | None = None) -> list[dict]:
    """Documents as dicts: ``id``, ``title``, ``split``, ``text``, ``fields`` (the record behind the text:
    name, kind, street, founder, year) and ``summary`` (a one-sentence reference summary).

    >>> load_documents("tune")[0]["id"]
    'd00'
    """
    return _read("documents.jsonl", split)


def load_questions(split: str | None = None) -> list[dict]:
    """Questions as dicts: ``id``, ``doc_id``, ``split``, ``type`` (founder, year, street, opens, closed,
    special), ``question``, ``answer`` (short gold answer) and ``evidence`` (the supporting sentence).

    >>> q = load_questions("eval")[0]; q["answer"] in q["evidence"]
    True
    """
    return _read("questions.jsonl", split)
