"""Lesson 10 (inside a Transformer LLM) runs end to end in smoke mode, and its outputs show what the lesson claims."""

from __future__ import annotations

import re

import pytest
from notebook_runner import ROOT, outputs_of, run_notebook


def _number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, f"not printed: {pattern}"
    return float(m.group(1).replace(",", ""))


@pytest.mark.slow
def test_lesson_10_runs_in_smoke_mode():
    nb = run_notebook(ROOT / "notebooks" / "10_inside_llm.ipynb", timeout=900)
    assert not outputs_of(nb, "error")
    text = "".join(o.get("text", "") for o in outputs_of(nb, "stream"))
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs_of(nb, "display_data"))
    # 1 · tokenization: a BPE was trained, both tokenizers round-trip Unicode, Chinese costs more tokens
    assert re.search(r"BPETokenizer\(vocab_size=\d+, merges=\d+\)", text)
    assert text.count("round-trip equal: True") == 2 and "round-trip equal: False" not in text
    assert _number(r"the Chinese versions cost ([\d.]+)× the tokens", text) > 1
    compression = [float(x) for x in re.findall(r"\d+: ([\d.]+)(?= \||\s+bytes/token)", text.split("bytes/token")[0])]
    assert compression and compression[0] == pytest.approx(1.0, abs=0.05) and compression[-1] > compression[0]
    # 2 · the from-scratch decoder gives transformers' logits, layer by layer
    assert _number(r"max \|logit difference\| ours vs transformers: ([\d.e+-]+)", text) <= 1e-4
    assert _number(r"largest difference over the \d+ hidden states: ([\d.e+-]+)", text) <= 1e-3
    assert "same next token: True" in text
    assert re.search(r"total \(our Llama\)\s+([\d,]+); transformers: \1", text)
    # 3 · the KV cache: same tokens, the measured size equals the formula, one timing row per length
    assert "same tokens with and without the cache: True" in text
    assert "same tokens as transformers generate: True" in text
    measured, formula = re.search(r"measured ([\d,]+) bytes, formula ([\d,]+) bytes", text).groups()
    assert measured == formula
    assert len(re.findall(r"n = +\d+: +[\d.]+ ms without cache", text)) >= 2
    # 4 · decoding: every strategy gives generate's tokens; the likelihood/diversity table is complete
    assert re.findall(r"token ids equal to transformers: (True|False)", text) == ["True"] * 4
    table = dict((m.group(1), (float(m.group(2)), float(m.group(3))))
                 for m in re.finditer(r"^\| ([^|]+?) \| (-?[\d.]+) \| ([\d.]+) \|$", text, re.M))
    assert {"greedy", "beam 3", "sample T=1.3", "top-p 0.9"} <= set(table)
    assert table["beam 3"][0] >= table["greedy"][0] - 0.05  # beam search optimises likelihood
    assert "Highest likelihood:" in markdown
    # 5 · bits per byte for both models; the pretrained LLM needs fewer
    gpt = _number(r"TinyGPT  : ([\d.]+) bits per byte", text)
    llm = _number(r"SmolLM2  : ([\d.]+) bits per byte", text)
    assert 0 < llm < gpt < 9
    # 6 · translation: a table of the dictionary baseline and both trained models, scored from the run
    rows = dict((m.group(1), [float(x) for x in m.groups()[1:]])
                for m in re.finditer(r"^\| (dictionary|encoder–decoder|decoder-only) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", text, re.M))
    assert set(rows) == {"dictionary", "encoder–decoder", "decoder-only"}, text
    assert all(0 <= v <= 100 for r in rows.values() for v in r)
    assert f"word-by-word dictionary scores chrF {rows['dictionary'][0]:.1f}" in markdown
    assert "| translation (held-out, chrF / BLEU) | dictionary" in markdown
    # figures drawn, the attention explorer displayed, the summary table built from the run
    images = [o for o in outputs_of(nb, "display_data") if "image/png" in o.get("data", {})]
    assert len(images) >= 5
    explorer = [c for c in nb.cells if c.cell_type == "code" and "attention_explorer(" in c.source]
    assert explorer and any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                            for o in explorer[0].outputs)
    assert "| bits per byte (held-out Python) | TinyGPT" in markdown
