"""Prompting, constrained JSON decoding and structured scoring (tutorlib.llm.prompting / constrained / structured)
on a tiny random Llama with the bundled SmolLM2 tokenizer and chat template."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tutorlib.llm.constrained import STRING, JsonConstrainer, allowed_next_tokens, constrained_answers, extraction_schema
from tutorlib.llm.prompting import draw_shots, few_shot_messages, generate_answers
from tutorlib.llm.structured import (classifier_answers, field_scores, majority_answer, paired_gain, parse_json_object,
                                     score_answers)


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tutorlib.models import llm_path

    tok = AutoTokenizer.from_pretrained(llm_path("smollm2"))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, eos_token_id=tok.eos_token_id,
                                         pad_token_id=tok.pad_token_id)).eval()
    return model, tok


def test_few_shot_messages_and_shots():
    msgs = few_shot_messages("q", [("a", "A"), ("b", "B")], system="S")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in msgs] == ["S", "a", "A", "b", "B", "q"]
    with pytest.raises(ValueError, match="pair"):
        few_shot_messages("q", [("only one",)])
    with pytest.raises(TypeError, match="string"):
        few_shot_messages(3)
    shots = draw_shots(list(range(20)), 4, seed=1, key=lambda x: x % 3)
    assert len(set(shots)) == 4 and {x % 3 for x in shots} == {0, 1, 2}
    assert draw_shots(list(range(20)), 4, seed=1) == draw_shots(list(range(20)), 4, seed=1)
    with pytest.raises(ValueError, match="cannot draw"):
        draw_shots([1, 2], 3, seed=0)


def test_batched_answers_equal_one_at_a_time(tiny):
    model, tok = tiny
    chats = [few_shot_messages(t) for t in ("short", "a much longer review of a kettle that broke", "mid length one")]
    batched = generate_answers(model, tok, chats, max_new_tokens=5, batch_size=3)
    single = [generate_answers(model, tok, [c], max_new_tokens=5, batch_size=1)[0] for c in chats]
    assert batched == single
    side = tok.padding_side
    generate_answers(model, tok, chats[:1], max_new_tokens=1)
    assert tok.padding_side == side


def test_constrained_answers_always_parse_and_respect_the_schema(tiny):
    model, tok = tiny
    schema = extraction_schema()
    answers = constrained_answers(model, tok, [few_shot_messages("Loved the kettle. 5/5."), few_shot_messages("awful")])
    for a in answers:
        obj = json.loads(a)
        assert list(obj) == [k for k, _ in schema]
        for key, spec in schema:
            assert isinstance(obj[key], str) if spec == STRING else obj[key] in spec


def test_constrained_decoding_follows_the_model_within_the_allowed_values(tiny):
    model, tok = tiny
    c = JsonConstrainer(tok, [("sentiment", ("positive", "negative", "mixed"))])
    prompt = tok.encode("x", add_special_tokens=False)
    got = json.loads(c.decode(model, prompt))["sentiment"]
    # brute force: the value whose tokens the greedy walk picks = best first token among the allowed ones
    forced = tok.encode('{"sentiment":', add_special_tokens=False)
    with torch.no_grad():
        logits = model(torch.tensor([prompt + forced])).logits[0, -1]
    cands = c.candidates["sentiment"]
    prefix = []
    while allowed := allowed_next_tokens(cands, prefix):
        with torch.no_grad():
            logits = model(torch.tensor([prompt + forced + prefix])).logits[0, -1]
        prefix.append(allowed[int(logits[allowed].argmax())])
    assert c.values["sentiment"][tuple(prefix)] == got


def test_allowed_next_tokens_and_bad_schemas(tiny):
    _, tok = tiny
    assert allowed_next_tokens([[1, 2], [1, 3], [4]], [1]) == [2, 3]
    assert allowed_next_tokens([[1, 2]], [1, 2]) == [] and allowed_next_tokens([[1, 2]], [9]) == []
    with pytest.raises(ValueError, match="non-empty tuple"):
        JsonConstrainer(tok, [("a", ())])
    with pytest.raises(ValueError, match="no fields"):
        JsonConstrainer(tok, [])


def test_parse_and_score():
    assert parse_json_object('x {"a": 1} y {"b": 2}') == {"a": 1}
    assert parse_json_object('{bad} {"a": 1}') == {"a": 1}
    assert parse_json_object("[1, 2]") is None
    assert field_scores({"a": True, "b": "Kettle"}, {"a": True, "b": "kettle"}) == {"a": 1.0, "b": 1.0}
    assert field_scores({"a": 1}, {"a": True}) == {"a": 0.0}
    s = score_answers(['{"a": 1, "b": 2}', "prose", {"a": 1, "b": 0}], [{"a": 1, "b": 2}] * 3)
    assert s["per_example"] == [1.0, 0.0, 0.5] and s["valid"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="same examples"):
        score_answers(["{}"], [])


def test_paired_gain_matches_the_formula():
    rng = np.random.default_rng(0)
    a, b = rng.random(30), rng.random(30)
    mean, se = paired_gain(list(a), list(b))
    d = a - b
    assert mean == pytest.approx(d.mean()) and se == pytest.approx(d.std(ddof=1) / math.sqrt(30))
    with pytest.raises(ValueError, match="same examples"):
        paired_gain([1.0], [1.0, 2.0])


def test_majority_and_classifier_baselines():
    golds = [{"p": "x", "s": "neg"}, {"p": "y", "s": "neg"}, {"p": "x", "s": "pos"}]
    assert majority_answer(golds) == {"p": "x", "s": "neg"}
    X = np.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0]])
    out = classifier_answers(X, golds, X, ["s"], fill={"p": "x"})
    assert [o["s"] for o in out] == ["neg", "neg", "pos"] and list(out[0]) == ["p", "s"]
    with pytest.raises(ValueError, match="must match"):
        classifier_answers(X[:2], golds, X, ["s"])
