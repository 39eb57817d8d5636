"""The course-written instruction sets: sizes, splits by domain, answers that match the reviews, no leakage."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tutorlib.data.instructions import (EXTRACTION_CHOICES, EXTRACTION_FIELDS, datasheet, instruction_sets_dir,
                                        load_extraction, load_preferences, max_overlap, ngram_jaccard)

NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


def test_sizes_and_domain_splits():
    train, held = load_extraction("train"), load_extraction("heldout")
    ptrain, pheld = load_preferences("train"), load_preferences("heldout")
    assert len(train) >= 300 and len(held) >= 100 and len(ptrain) >= 200 and len(pheld) >= 60
    train_domains = {e.domain for e in train} | {p.domain for p in ptrain}
    held_domains = {e.domain for e in held} | {p.domain for p in pheld}
    assert held_domains == {"hotel", "book"} and not (train_domains & held_domains)
    # the preference reviews are other reviews than the extraction ones
    assert not ({e.review for e in train + held} & {p.review for p in ptrain + pheld})
    assert len({e.id for e in train + held}) == len(train) + len(held)


def test_no_heldout_review_overlaps_a_training_review():
    train = [e.review for e in load_extraction("train")] + [p.review for p in load_preferences("train")]
    held = [e.review for e in load_extraction("heldout")] + [p.review for p in load_preferences("heldout")]
    worst, query, text = max_overlap(held, train, n=5)
    assert worst <= 0.5, f"held-out review {query!r} is too close to training review {text!r} (Jaccard {worst:.2f})"
    # the check itself catches a near copy
    assert ngram_jaccard(held[0], held[0].replace(".", "!")) > 0.5


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_every_answer_is_the_json_of_fields_the_review_states(split):
    for e in load_extraction(split) + load_preferences(split):
        answer = e.answer if hasattr(e, "answer") else e.chosen
        assert list(json.loads(answer)) == list(EXTRACTION_FIELDS) and json.loads(answer) == e.fields
        f, text = e.fields, e.review.lower()
        assert f["product"] in text, e
        for key, allowed in EXTRACTION_CHOICES.items():
            assert f[key] in allowed, (key, e)
        if f["rating"] is not None:
            assert re.search(rf"\b({f['rating']}|{NUMBER_WORDS[f['rating']]})\b", text), e
        assert (f["issue"] == "none") == (f["sentiment"] == "positive")


def test_rejected_answers_are_worse_in_the_stated_way():
    pairs = load_preferences("all")
    kinds = {p.rejected_kind.split(":")[0] for p in pairs}
    assert kinds == {"wrong_value", "missing_field", "prose", "chatty", "invented_field"}
    for p in pairs:
        assert p.rejected != p.chosen
        kind = p.rejected_kind.split(":")
        if kind[0] == "wrong_value":
            bad = json.loads(p.rejected)
            assert [k for k in EXTRACTION_FIELDS if bad[k] != p.fields[k]] == [kind[1]]
        elif kind[0] == "missing_field":
            assert kind[1] not in json.loads(p.rejected)
    # "the shorter answer wins" would not learn these preferences
    shorter = sum(len(p.chosen) < len(p.rejected) for p in pairs) / len(pairs)
    assert 0.2 < shorter < 0.6


def test_generator_reproduces_the_shipped_files(tmp_path):
    folder = instruction_sets_dir()
    src = (folder / "generate.py").read_text(encoding="utf-8")
    (tmp_path / "generate.py").write_text(src, encoding="utf-8")
    subprocess.run([sys.executable, str(tmp_path / "generate.py")], check=True, capture_output=True)
    for name in ("extraction_sft.jsonl", "extraction_prefs.jsonl", "DATASHEET.md"):
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes(), name
    assert "## Splits" in datasheet()


def test_bad_requests_are_explained(tmp_path):
    with pytest.raises(ValueError, match="unknown split 'test'"):
        load_extraction("test")
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"a": 1}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        load_extraction("all", path=bad)
    with pytest.raises(FileNotFoundError, match="generate.py"):
        load_extraction("all", path=tmp_path / "missing.jsonl")
