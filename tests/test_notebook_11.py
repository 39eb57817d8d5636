"""Lesson 11 runs end to end in smoke mode, and its outputs show what the lesson claims."""

from __future__ import annotations

import re

import pytest
from notebook_runner import ROOT, outputs_of, run_notebook


@pytest.mark.slow
def test_lesson_11_runs_in_smoke_mode():
    nb = run_notebook(ROOT / "notebooks" / "11_instruction_tuning.ipynb", timeout=600)
    assert not outputs_of(nb, "error")
    text = "".join(o.get("text", "") for o in outputs_of(nb, "stream"))
    # the base model: pretraining lowered the held-out perplexity from about the vocabulary size
    before, after = map(float, re.search(r"validation perplexity: ([\d.]+) before training, ([\d.]+) after", text).groups())
    assert before > 60 and after < before
    # SFT through the CLI: exit code 0, completion-only loss, adapter written; the bad file named its line
    assert "exit code 0" in text and "adapter_model.safetensors" in text
    share = int(re.search(r"\(([\d]+) % — the completions\)", text).group(1))
    assert 0 < share < 100
    assert re.search(r"line 2 has no 'completion' key \(it has 'prompt', 'answer'\)", text) and "exit code 2" in text
    assert float(re.search(r"LoRA on \['c_attn'\]: [\d,]+ trainable parameters \(([\d.]+) %\)", text).group(1)) < 20
    rouge = re.search(r"\| TinyGPT \+ LoRA SFT \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", text)
    assert rouge and all(0 <= float(v) <= 100 for v in rouge.groups())
    # the verdict against the constant baseline is computed from the same scores
    verdict = "".join(o["data"].get("text/markdown", "") for o in outputs_of(nb, "execute_result"))
    m = re.search(r"ROUGE-L \*\*([\d.]+)\*\*, (above|below|level with) the constant baseline \(([\d.]+)\)", verdict)
    assert m and float(m.group(1)) == float(rouge.group(3))
    # figures were drawn and the summary explorer was displayed
    images = [o for o in outputs_of(nb, "display_data") if "image/png" in o.get("data", {})]
    assert len(images) >= 2
    widgets = [o for o in outputs_of(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets
