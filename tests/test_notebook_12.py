"""Lesson 12 runs end to end in smoke mode, and its outputs show what the lesson claims."""

from __future__ import annotations

import re

import pytest
from notebook_runner import ROOT, outputs_of, run_notebook


@pytest.mark.slow
def test_lesson_12_runs_in_smoke_mode():
    nb = run_notebook(ROOT / "notebooks" / "12_llm_applications.ipynb", timeout=600)
    assert not outputs_of(nb, "error")
    text = "".join(o.get("text", "") for o in outputs_of(nb, "stream"))
    # the responder was pretrained
    before, after = map(float, re.search(r"validation perplexity ([\d.]+) -> ([\d.]+)", text).groups())
    assert after < before
    # dialogue: every managed prompt within its budget; memory recalled the bee-keeping turn
    for strategy in ("truncate", "summarize"):
        sizes = re.search(rf"{strategy}: prompt sizes per turn \[([\d, ]+)\] \(budget (\d+)\)", text)
        assert sizes and max(map(int, sizes.group(1).split(","))) <= int(sizes.group(2))
    assert "Summary of earlier conversation" in text
    bees = text.split("Where do I keep my bees?\n", 1)[1].splitlines()[0]
    assert "bees in Lyon" in bees
    assert "Relevant earlier notes:" in text
    # QA was trained and scored, and the verdict against the baseline uses the same numbers
    em, f1 = map(float, re.search(r"exact match ([\d.]+) %, token F1 ([\d.]+) %", text).groups())
    assert 0 <= em <= f1 <= 100
    verdict = "".join(o["data"].get("text/markdown", "") for o in outputs_of(nb, "execute_result"))
    m = re.search(r"exact match \*\*([\d.]+) %\*\*, F1 \*\*([\d.]+) %\*\*", verdict)
    assert m and (float(m.group(1)), float(m.group(2))) == (em, f1)
    assert "beat" in verdict
    # figures were drawn and the context explorer was displayed
    images = [o for o in outputs_of(nb, "display_data") if "image/png" in o.get("data", {})]
    assert len(images) >= 1
    widgets = [o for o in outputs_of(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets
