"""The Quillhaven knowledge base: its size, its splits, answers grounded in their evidence, the files equal to what
the generator writes, and no evaluation question (or document) too close to anything shown in a prompt or tuned on."""

from __future__ import annotations

from collections import Counter

from tutorlib.data.knowledge import knowledge_path, load_documents, load_questions
from tutorlib.data.knowledge.generate import build, jaccard


def test_sizes_splits_and_datasheet():
    docs, qs = load_documents(), load_questions()
    assert len(docs) >= 36 and len(qs) >= 100
    assert Counter(q["split"] for q in qs) == {"tune": 36, "eval": 108}
    assert {d["split"] for d in docs} == {"tune", "eval"}
    assert "Splits" in knowledge_path("DATASHEET.md").read_text()


def test_every_answer_is_in_its_evidence_and_its_document():
    docs = {d["id"]: d for d in load_documents()}
    for q in load_questions():
        assert q["answer"] in q["evidence"] and q["evidence"] in docs[q["doc_id"]]["text"], q
        assert docs[q["doc_id"]]["split"] == q["split"]
        assert docs[q["doc_id"]]["title"] in q["question"]


def test_shipped_files_are_what_the_generator_writes():
    docs, qs = build()
    assert docs == load_documents() and qs == load_questions()


def test_no_evaluation_item_leaks_a_prompt_or_tuning_example():
    """Character-5-gram Jaccard <= 0.5 between every eval question and every tune question (the only source of
    prompt examples and tuning), and between every eval document and every tune document (the worked examples of
    the summarization and extraction prompts)."""
    tune_q = [q["question"] for q in load_questions("tune")]
    worst = max((jaccard(q["question"], t), q["question"], t) for q in load_questions("eval") for t in tune_q)
    assert worst[0] <= 0.5, worst
    tune_d = [d["text"] for d in load_documents("tune")]
    worst = max((jaccard(d["text"], t), d["id"]) for d in load_documents("eval") for t in tune_d)
    assert worst[0] <= 0.5, worst
