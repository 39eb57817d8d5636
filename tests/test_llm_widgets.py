"""Lesson 10's attention explorer: its controls change what it shows, on a tiny Llama of the bundled LLM's class."""

from __future__ import annotations

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from tutorlib.llm.widgets import AttentionExplorer, draw_next_token_attention, next_token_attention  # noqa: E402
from tutorlib.models import ByteTokenizer  # noqa: E402


@pytest.fixture(scope="module")
def tiny_llama():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def test_attention_explorer_controls_change_the_output(tiny_llama):
    ex = AttentionExplorer(tiny_llama, ByteTokenizer(), prompt="def add(a, b):", layer=0, head=0)
    assert "tutorlib-widget" in ex.box._dom_classes and ex.renders == 1
    first, status = ex.last["attention"].clone(), ex.status.value
    ex.controls["layer"].value = 2
    assert ex.renders == 2 and not torch.allclose(ex.last["attention"], first)
    ex.controls["head"].value = 3
    assert ex.renders == 3 and ex.status.value != status and "head 3" in ex.status.value
    before = ex.last["top_prob"]
    ex.controls["prompt"].value = "xyz"
    assert ex.last["attention"].shape == (3, 3) and ex.last["top_prob"] != before
    ex.controls["prompt"].value = ""
    assert "empty" in ex.status.value


def test_the_attention_rows_are_causal_distributions(tiny_llama):
    r = next_token_attention(tiny_llama, ByteTokenizer(), "hello world", layer=1, k=5)
    att = r["attention"]
    assert att.shape == (4, 11, 11) and len(r["tokens"]) == 11
    assert torch.allclose(att.sum(-1), torch.ones(4, 11), atol=1e-5)
    assert float(att.triu(1).abs().max()) == 0.0  # no token looks at a later one
    assert r["top_probs"] == sorted(r["top_probs"], reverse=True) and len(r["top_tokens"]) == 5
    # the model keeps its fast attention kernel after the explorer asked for the weights
    assert tiny_llama.config._attn_implementation == "sdpa"
    fig = draw_next_token_attention(r, head=2)
    assert fig.axes[1].get_title() == "attention weights, layer 1, head 2" and fig.axes[0].get_xlabel() == "probability"
    with pytest.raises(ValueError, match="layer must be in 0..2"):
        next_token_attention(tiny_llama, ByteTokenizer(), "hi", layer=3)
    with pytest.raises(ValueError, match="head must be in 0..3"):
        draw_next_token_attention(r, head=4)


def test_the_explorer_reads_the_same_attention_from_the_from_scratch_llama(tiny_llama):
    from tutorlib.llm.llama import Llama

    ours = Llama.from_hf(tiny_llama).eval()
    a = next_token_attention(ours, ByteTokenizer(), "def f(x):", layer=2, k=4)
    b = next_token_attention(tiny_llama, ByteTokenizer(), "def f(x):", layer=2, k=4)
    assert torch.allclose(a["attention"], b["attention"], atol=1e-5) and a["top_ids"] == b["top_ids"]
    ex = AttentionExplorer(ours, ByteTokenizer(), prompt="abc", layer=0)
    ex.controls["layer"].value = 1
    assert ex.renders == 2 and ex.last["layer"] == 1


def test_extraction_explorer_scores_each_model_and_caches_answers():
    from tutorlib.llm.widgets import ExtractionExplorer

    calls = []

    def right(review):
        calls.append(review)
        return '{"sentiment": "negative", "rating": 1}'

    ex = ExtractionExplorer(["great", "awful"], [{"sentiment": "positive", "rating": 5},
                                                 {"sentiment": "negative", "rating": 1}],
                            {"right on 2": right, "prose": lambda r: "It is a review."})
    assert ex.update(index=1)["fields"] == {"sentiment": 1.0, "rating": 1.0}
    assert ex.update(model="prose")["fields"] == {"sentiment": 0.0, "rating": 0.0}
    ex.which.value = "right on 2"            # the widget's own control drives the same update
    assert ex.last["model"] == "right on 2" and calls == ["awful"]   # cached: generated once
    assert "2 of 2 fields right" in ex.view.value
    with pytest.raises(ValueError, match="choose one of"):
        ex.update(model="gpt-9")
    with pytest.raises(ValueError, match="as many gold answers"):
        ExtractionExplorer(["a"], [], {"m": right})
