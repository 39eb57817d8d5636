"""Lesson 10's library pieces besides decoding: pretraining, metrics, dialogue and memory, task data, widget."""

from __future__ import annotations

import pytest
import torch

from tutorlib.llm import (ChatSession, LongTermMemory, Turn, bag_of_words_embedder, corpus_scores, cosine_top_k,
                          exact_match, first_sentence_summary, lcs_length, pretrain_gpt, review_qa_examples,
                          review_summary_examples, rouge_l, rouge_n, token_f1)
from tutorlib.models import GPTConfig


def test_pretraining_lowers_perplexity_and_records_samples():
    text = "def add(a, b):\n    return a + b\n\nclass A:\n    pass\n" * 60
    res = pretrain_gpt(text, GPTConfig(block_size=24, n_layer=1, n_head=2, d_model=32), steps=40, batch_size=8,
                       eval_every=20, sample_chars=10)
    assert [e["step"] for e in res.evals] == [0, 20, 40]
    assert res.evals[0]["val_ppl"] > 60 and res.final_val_ppl < res.evals[0]["val_ppl"] / 3
    assert all(e["sample"].startswith("def ") and len(e["sample"]) == 14 for e in res.evals)
    assert len(res.steps) == 40 and res.steps[-1]["loss"] < res.steps[0]["loss"]
    with pytest.raises(ValueError, match="longer than block_size"):
        pretrain_gpt("short", GPTConfig(block_size=24, n_layer=1, n_head=2, d_model=32), steps=2)


def test_rouge_matches_hand_computed_values():
    # ROUGE-1: 5 of 6 unigrams shared; ROUGE-2: "the cat", "on the", "the mat" of 5 bigrams
    assert rouge_n("the cat sat on the mat", "the cat lay on the mat", 1)["f"] == pytest.approx(5 / 6)
    assert rouge_n("the cat sat on the mat", "the cat lay on the mat", 2)["f"] == pytest.approx(3 / 5)
    # LCS of the two sentences is "police the gunman" (3 of 4 words each)
    r = rouge_l("police killed the gunman", "police kill the gunman")
    assert r["p"] == pytest.approx(3 / 4) and r["r"] == pytest.approx(3 / 4)
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    assert rouge_l("", "a b")["f"] == 0.0 and rouge_n("a", "a", 2)["f"] == 0.0
    assert exact_match("The hotel!", "hotel") == 1.0 and token_f1("cold soup", "soup") == pytest.approx(2 / 3)
    scores = corpus_scores(["a b c", "x"], ["a b c", "y"])
    assert scores["exact_match"] == 0.5 and scores["rouge1"] == 0.5
    with pytest.raises(ValueError, match="pair up"):
        corpus_scores(["a"], [])
    with pytest.raises(ValueError, match="at least 1"):
        rouge_n("a", "a", 0)


def test_chat_session_keeps_the_budget_and_summarises():
    count = lambda s: len(s.split())  # noqa: E731
    seen = []
    chat = ChatSession(lambda p: seen.append(p) or "sure.", max_tokens=60, count_tokens=count, strategy="summarize",
                       system="You are helpful.")
    chat.send("My name is Ada and I live in Lyon. I like long walks.")
    for i in range(12):
        chat.send(f"Tell me fact number {i} about the ocean and the fish living there please.")
    assert all(count(p) <= 60 for p in seen)
    assert chat.n_summarized > 0 and "Summary of earlier conversation" in seen[-1]
    assert seen[-1].startswith("You are helpful.") and seen[-1].endswith("Assistant:")
    assert "fact number 11" in seen[-1]  # the newest message is always kept verbatim
    trunc = ChatSession(lambda p: "ok", max_tokens=60, count_tokens=count, strategy="truncate")
    for i in range(12):
        trunc.send(f"Tell me fact number {i} about the ocean and the fish living there please.")
    assert count(trunc.last_prompt) <= 60 and "Summary" not in trunc.last_prompt and "number 0 " not in trunc.last_prompt
    assert first_sentence_summary([Turn("user", "A. B.")]) == "user said: A."
    with pytest.raises(ValueError, match="unknown strategy"):
        ChatSession(lambda p: "", strategy="forget")
    with pytest.raises(ValueError, match="empty"):
        chat.send("  ")


def test_memory_persists_in_sqlite_and_recalls_by_meaning(tmp_path):
    from tutorlib.llm import minilm_embedder

    path = tmp_path / "memory.sqlite"
    emb = minilm_embedder()
    mem = LongTermMemory(path, embed=emb)
    for text in ["My dog Rex loves the beach.", "I am allergic to peanuts.", "I work as a train driver.",
                 "My favourite film is Alien."]:
        mem.add("user", text)
    mem.close()
    mem = LongTermMemory(path, embed=emb)  # reopened from disk
    assert len(mem) == 4
    assert mem.recall("What food should I avoid cooking for you?", k=1)[0].text == "I am allergic to peanuts."
    assert mem.recall("Which pet do I have?", k=1)[0].text == "My dog Rex loves the beach."
    hits = mem.recall("jobs and railways", k=4)
    assert hits[0].text == "I work as a train driver." and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    with pytest.raises(ValueError, match="reopen the memory with the embedder"):
        LongTermMemory(path, embed=bag_of_words_embedder(16)).recall("x")


def test_chat_with_memory_brings_back_old_facts():
    mem = LongTermMemory(embed=bag_of_words_embedder())
    chat = ChatSession(lambda p: "noted.", max_tokens=40, count_tokens=lambda s: len(s.split()), strategy="truncate",
                       memory=mem, recall_k=1)
    chat.send("My sister Juliette plays the cello.")
    for i in range(8):
        chat.send(f"Here is unrelated message {i} about the weather today.")
    chat.send("What instrument does Juliette play?")
    assert "Relevant earlier notes: My sister Juliette plays the cello." in chat.last_prompt


def test_cosine_top_k_is_not_the_dot_product():
    keys = torch.tensor([[10.0, 10.0], [1.0, 0.0], [0.0, 1.0]])
    assert cosine_top_k(torch.tensor([1.0, 0.0]), keys, 1)[1].tolist() == [1]
    with pytest.raises(ValueError, match="expected query"):
        cosine_top_k(torch.zeros(3), keys, 1)


def test_task_data_is_well_formed():
    qa = review_qa_examples("train", n=50)
    assert len(qa) == 50 and all(ex.context[ex.answer_start:ex.answer_start + len(ex.answer)] == ex.answer for ex in qa)
    assert {ex.question.split()[3] for ex in qa} >= {"about"} and any("negative" in ex.question or "positive" in ex.question for ex in qa)
    from tutorlib.llm.tasks import QAFeatures
    from tutorlib.models import load_tokenizer

    tok = load_tokenizer()
    feats = QAFeatures(qa[:10], tok)
    for ex, f in zip(qa[:10], feats.items):
        span = tok.decode(f["input_ids"][f["start_positions"]:f["end_positions"] + 1])
        assert span.replace(" ", "") == tok.decode(tok(ex.answer, add_special_tokens=False)["input_ids"]).replace(" ", "")
    rows = review_summary_examples("val", n=5)
    assert all(r["prompt"].startswith("Review: ") and r["prompt"].endswith("\nSummary:") for r in rows)
    assert all(r["completion"].split()[0] in ("positive", "negative") for r in rows)


def test_decoding_widget_regenerates():
    from tutorlib.llm.widgets import decoding_explorer
    from tutorlib.models import TinyGPT

    torch.manual_seed(0)
    box = decoding_explorer(TinyGPT(GPTConfig(block_size=32, n_layer=1, n_head=2, d_model=16)), max_new_tokens=12)
    ex = box.explorer
    assert "tutorlib-widget" in box._dom_classes and ex.renders == 1
    first = ex.text.value
    ex.controls["temperature"].value = 1.9  # the first slider
    assert ex.renders == 2 and ex.text.value != first
    ex.controls["strategy"].value = "beam"
    assert "beams" in ex.text.value and len(ex.last["text"]) == 12
    ex.button.click()
    assert ex.controls["seed"].value == 1
    ex.controls["prompt"].value = ""
    assert "prompt is empty" in ex.text.value


@pytest.mark.parametrize("name", ["decoding", "hf", "metrics", "pretrain", "dialogue", "tasks", "widgets", "tools"])
def test_docstring_examples_run(name):
    import doctest
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    mod = importlib.import_module(f"tutorlib.llm.{name}")
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted > 0


def test_causal_lm_docstring_examples_run():
    import doctest

    import tutorlib.finetune.causal_lm as mod

    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted > 0


def test_summarize_uses_generate_and_equals_our_greedy():
    from tutorlib.llm import char_tokenizer, greedy, summarize, to_gpt2
    from tutorlib.models import TinyGPT

    torch.manual_seed(0)
    gpt = TinyGPT(GPTConfig(block_size=48, n_layer=1, n_head=2, d_model=32)).eval()
    hf, tok = to_gpt2(gpt), char_tokenizer()
    prompts = ["Review: fine.\nSummary:", "Review: " + "long " * 20 + "\nSummary:"]
    got = summarize(hf, tok, prompts, max_new_tokens=10)
    for p, text in zip(prompts, got):
        ids = torch.tensor([tok(p)["input_ids"][-(48 - 10):]])
        new = greedy(gpt, ids, 10, eos_id=tok.eos_token_id)[0, ids.shape[1]:].tolist()
        if tok.eos_token_id in new:
            new = new[:new.index(tok.eos_token_id)]
        assert text == tok.decode(new).split("\n")[0].strip()


def test_chat_session_on_a_chat_template_keeps_the_budget_in_real_tokens(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tiny_llm import tiny_llm_folder
    from tutorlib.llm import ChatSession, token_counter

    folder = tiny_llm_folder(tmp_path / "m")
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    chat = ChatSession.for_chat_model(model, tok, max_tokens=200, reply_tokens=8, strategy="truncate", system="Be brief.")
    count = token_counter(tok)
    for i in range(6):
        chat.send(f"Here is message number {i}, with a few more words to fill the budget.")
        assert count(chat.last_prompt) <= 200 - 8
        assert chat.last_prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
        assert chat.last_prompt.endswith(f"number {i}, with a few more words to fill the budget.<|im_end|>\n<|im_start|>assistant\n")
    assert "number 0," not in chat.last_prompt and len(chat.turns) == 12
    long = ChatSession.for_chat_model(model, tok, max_tokens=60, reply_tokens=4)
    long.add("user", "word " * 200)
    long.send("and the end of it")
    assert count(long.last_prompt) <= 56 and long.last_prompt.endswith("and the end of it<|im_end|>\n<|im_start|>assistant\n")
    with pytest.raises(ValueError, match="role must be"):
        chat.add("system", "x")
    with pytest.raises(ValueError, match="empty"):
        chat.add("user", " ")


def test_recall_prompts_truncate_summarise_and_remember_across_sessions(tmp_path):
    from tutorlib.llm.dialogue import recall_correct, recall_dialogues, recall_prompts, user_facts_summary

    count = lambda s: len(s.split())  # noqa: E731
    convs = recall_dialogues(3, n_facts=3, n_filler=6, seed=1)
    assert recall_dialogues(3, n_facts=3, n_filler=6, seed=1) == convs and len(convs[0]["turns"]) == 18
    facts = {s: recall_prompts(convs, s, 90, count, memory_dir=tmp_path, recall_k=2) for s in ("truncate", "summarize", "memory")}
    assert all(len(v) == 9 for v in facts.values())
    assert all(count(p) <= 90 for v in facts.values() for p, _ in v)
    assert not any(a in p for p, a in facts["truncate"])  # the facts were the oldest turns: truncation dropped them
    assert sum(a in p for p, a in facts["summarize"]) > 0 and all("Summary of earlier" in p for p, _ in facts["summarize"])
    # a new session recalls from the SQLite file (bag-of-words similarity here: words the question shares with the fact)
    assert sum(a in p for p, a in facts["memory"]) >= 5 and len(list(tmp_path.glob("dialogue*.sqlite"))) == 3
    mem = LongTermMemory(tmp_path / "dialogue0.sqlite", embed=bag_of_words_embedder())  # the file outlives the sessions
    assert len(mem) == 18 + 3 and mem.all()[0][2] == convs[0]["turns"][0][1]
    assert user_facts_summary([Turn("user", "I live in Oslo. Cold."), Turn("assistant", "ok")]) == "User: I live in Oslo."
    assert recall_correct("It is Rex.", "Rex") and not recall_correct("Rexford", "Rex")
    with pytest.raises(ValueError, match="unknown strategy"):
        recall_prompts(convs, "forget", 70, count)
    with pytest.raises(ValueError, match="n_facts must be"):
        recall_dialogues(1, n_facts=0)
