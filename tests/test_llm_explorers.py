"""The widgets of lessons 11 and 12: the summary explorer switches the LoRA adapter off for the base model,
the context explorer replays the chat within the chosen budget; both redraw when their slider moves."""

from __future__ import annotations

import doctest

import pytest
import torch

from tutorlib.llm import char_tokenizer, to_gpt2
from tutorlib.llm import explorers
from tutorlib.llm.explorers import context_explorer, replay_chat, summarize_one, summary_explorer
from tutorlib.models import GPTConfig, TinyGPT

ROWS = [{"prompt": f"Review: review number {i} was fine\nSummary:", "completion": " positive review of a book"}
        for i in range(3)]


def _lora_gpt2():
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = to_gpt2(TinyGPT(GPTConfig(block_size=64, n_layer=1, n_head=2, d_model=16)))
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["c_attn"], init_lora_weights=False)).eval()
    with torch.no_grad():  # a large random adapter, so that on and off surely decode differently
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.mul_(30)
    return model


def test_summary_explorer_decodes_with_and_without_the_adapter():
    model, tok = _lora_gpt2(), char_tokenizer()
    on = summarize_one(model, tok, ROWS[0], adapter=True, max_new_tokens=8)
    off = summarize_one(model, tok, ROWS[0], adapter=False, max_new_tokens=8)
    with model.disable_adapter():
        base_logits = model(torch.tensor([tok(ROWS[0]["prompt"])["input_ids"]])).logits
    tuned_logits = model(torch.tensor([tok(ROWS[0]["prompt"])["input_ids"]])).logits
    assert not torch.allclose(base_logits, tuned_logits)
    assert on["reference"] == "positive review of a book" and 0.0 <= on["rougeL"] <= 1.0
    assert off == summarize_one(model, tok, ROWS[0], adapter=False, max_new_tokens=8)  # deterministic greedy
    box = summary_explorer(model, tok, ROWS, max_new_tokens=8)
    ex = box.explorer
    assert "tutorlib-widget" in box._dom_classes and ex.renders == 1
    ex.controls["index"].value = 2
    assert ex.renders == 2 and "review number 2" in ex.text.value
    with pytest.raises(ValueError, match="prompt.*completion"):
        summarize_one(model, tok, {"prompt": "x"})
    with pytest.raises(ValueError, match="no rows"):
        summary_explorer(model, tok, [])


def test_context_explorer_keeps_every_prompt_within_the_budget():
    messages = ["My name is Ada and I keep bees in Lyon."] + [f"Question {i}: what is a decorator in Python?" for i in range(6)]
    for strategy in ("truncate", "summarize"):
        chat = replay_chat(messages, lambda p: "ok.", budget=150, strategy=strategy, reply_tokens=20)
        assert len(chat.log) == len(messages) and all(e["tokens"] <= 130 for e in chat.log)
    box = context_explorer(messages, lambda p: "ok.", reply_tokens=20, budget=400)
    ex = box.explorer
    assert "tutorlib-widget" in box._dom_classes and ex.renders == 1
    ex.controls["budget"].value = 160  # too small for the first turn
    assert ex.renders == 2 and "<b>gone</b>" in ex.text.value
    ex.controls["budget"].value = 1000  # the whole history fits
    assert "<b>verbatim</b>" in ex.text.value and all(e["tokens"] <= 980 for e in ex.chat.log)
    ex.controls["budget"].value = 260
    ex.controls["strategy"].value = "summarize"
    assert "Summary of earlier conversation" in ex.chat.last_prompt
    assert ("<b>in the summary</b>" in ex.text.value) == (messages[0][:20] in ex.chat.last_prompt)
    with pytest.raises(ValueError, match="no messages"):
        context_explorer([], lambda p: "")


def test_docstring_examples_run():
    assert doctest.testmod(explorers).failed == 0
