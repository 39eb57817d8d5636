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
    markdown = "".join(o["data"].get("text/markdown", "") for o in outputs_of(nb) if "data" in o)
    # the data: held-out domains are not near copies of training reviews
    jac = float(re.search(r"Jaccard of a held-out review with a training review: ([\d.]+) \(limit 0.5\)", text).group(1))
    assert 0 < jac < 0.5
    # every baseline is in the table, and constrained decoding is valid JSON by construction
    for row in ("trivial (majority per field)", "zero-shot", "few-shot (mean of seeds)", "constrained JSON (few-shot prompt)",
                "MiniLM classifier (+ majority product)", "LoRA SFT", "LoRA SFT + DPO"):
        assert f"| {row} |" in markdown, row
    assert re.search(r"\| constrained JSON \(few-shot prompt\) \| 100% \|", markdown)
    # the gain is computed in paired standard errors, and the verdict quotes the same number
    m = re.search(r"gain over the best baseline \((.+?)\): ([+-][\d.]+) ± ([\d.]+) \(paired SE over (\d+) reviews\) = ([+-]?[\d.]+) SE", text)
    assert m
    assert f"**{m.group(5).lstrip('+')} paired standard errors**" in markdown
    assert ("a real gain by our rule" in markdown) == (float(m.group(2)) >= 2 * float(m.group(3)) and float(m.group(3)) > 0)
    # DPO: preference accuracy on pairs whose chosen answer is not shorter, lengths and task accuracy before/after
    assert re.search(r"held-out preference accuracy \(chosen not shorter\): \d+% before DPO, \d+% after", text)
    assert re.search(r"answer length: [\d.]+ tokens after SFT, [\d.]+ after DPO", text)
    assert re.search(r"log-prob margin of the chosen answer: [-\d.]+ nats before DPO, [-\d.]+ after \([+-][\d.]+ ± [\d.]+, [-\d.]+ paired SE\)", text)
    assert re.search(r"task accuracy: [\d.]+ after SFT, [\d.]+ after DPO \(difference [+-][\d.]+ ± [\d.]+\)", text)
    n_eval = int(m.group(4))
    assert text.count("  after SFT: ") == min(5, n_eval) and text.count("  after DPO: ") == min(5, n_eval)
    # the cost estimate uses this run's measured throughput
    assert re.search(r"measured: \d+ generated tokens/s, \d+ training tokens/s; DPO took \d+ CPU-s", text)
    images = [o for o in outputs_of(nb, "display_data") if "image/png" in o.get("data", {})]
    assert len(images) >= 3
