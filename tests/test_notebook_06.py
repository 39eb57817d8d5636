"""Lesson 06 runs end to end in smoke mode, and its outputs show what the lesson claims."""

from __future__ import annotations

import re

import pytest
from notebook_runner import ROOT, outputs_of, run_notebook


@pytest.mark.slow
def test_lesson_06_runs_in_smoke_mode():
    nb = run_notebook(ROOT / "notebooks" / "06_peft.ipynb", timeout=600)
    text = "".join(o.get("text", "") for o in outputs_of(nb, "stream"))
    assert not outputs_of(nb, "error")
    # our LoRA == peft LoRA: equal trainable counts and outputs equal to float rounding
    counts = re.search(r"trainable: ours ([\d,]+), peft ([\d,]+)", text)
    assert counts and counts.group(1) == counts.group(2)
    diff = float(re.search(r"largest difference ours vs peft: ([\d.e+-]+)", text).group(1))
    assert diff < 1e-5
    # merging keeps the outputs
    assert float(re.search(r"merged vs unmerged logits: largest difference ([\d.e+-]+)", text).group(1)) < 1e-4
    # the comparison table was printed and LoRA trains far fewer parameters than full fine-tuning
    assert "| method | trainable | trainable % | peak train MiB |" in text
    lora = re.search(r"\| LoRA \(peft\) \| [\d,]+ \| ([\d.]+) \| (\d+) \|", text)
    full = re.search(r"\| full fine-tuning \| [\d,]+ \| ([\d.]+) \| (\d+) \|", text)
    assert lora and full and float(lora.group(1)) < 1 and int(lora.group(2)) < int(full.group(2))
    # adapter artefacts: kilobytes, reloaded exactly, merged for deployment
    assert float(re.search(r"reloaded adapter vs trained model: largest logit difference ([\d.e+-]+)", text).group(1)) < 1e-5
    assert "MiniLMClassifier with" in text
    # the CLI section trained, predicted, and rejected the bad file with a one-line message
    assert "exit code 0" in text and "line 3: column 'review' is empty" in text
    # each section's conclusion and the summary table are Markdown built from the run's numbers
    md = "".join(o["data"]["text/markdown"] for o in outputs_of(nb, "display_data") if "text/markdown" in o.get("data", {}))
    assert md.count("**What we measured") >= 8, md[:500]
    assert re.search(r"LoRA \(r=8, query\+value\) trains [\d.]+ % of the parameters, peaks at \d+% of full fine-tuning", md)
    assert re.search(r"the adapter file is [\d,]+ KiB, \d+× smaller than a model copy", md)
    assert re.search(r"\| test accuracy, LoRA vs full \| [\d.]+ % vs [\d.]+ % \|", md)
    # figures were drawn, and the explorer widget was displayed
    images = [o for o in outputs_of(nb, "display_data") if "image/png" in o.get("data", {})]
    assert len(images) >= 4
    widgets = [o for o in outputs_of(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets
