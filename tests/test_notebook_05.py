"""Lesson 05 (compression) runs end to end in smoke mode and shows its plots, tables and the pruning widget."""

from __future__ import annotations

import re

from notebook_runner import ROOT, outputs_of, run_notebook


def test_lesson_05_runs_in_smoke_mode():
    nb = run_notebook(ROOT / "notebooks" / "05_compression.ipynb", timeout=600)
    text = "".join(o.get("text", "") for o in outputs_of(nb, "stream"))
    images = [o for o in outputs_of(nb) if "image/png" in o.get("data", {})]
    widgets = [o for o in outputs_of(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(images) >= 7, f"expected the lesson's figures, got {len(images)}"
    assert widgets, "the sparsity explorer (and the live training dashboard) should display widgets"
    # the measured sections all reported
    for needle in ("identical masks: True", "same codes as torch.quantize_per_tensor: True",
                   "Pareto front (latency):", "distilled student:", "| variant | params |"):
        assert needle in text, f"missing output {needle!r}"
    # each section's conclusion and the summary table are Markdown built from the run's numbers
    md = "".join(o["data"]["text/markdown"] for o in outputs_of(nb, "display_data") if "text/markdown" in o.get("data", {}))
    assert md.count("**What we measured") >= 14, md[:500]
    assert re.search(r"the pruned model changes accuracy by [+-][\d.]+ ± [\d.]+ points against the teacher: (within|outside)", md)
    assert re.search(r"Amdahl's law predicts [\d.]+× for the whole model \(timed: [\d.]+×\)", md)
    assert re.search(r"the distilled student keeps [\d.]+% of the teacher's accuracy", md)
    assert re.search(r"\| teacher \(fine-tuned MiniLM\) \| test accuracy [\d.]+%", md)
    # the naive-zeroing demo shows the zeros coming back, the masked version keeps them
    assert "after one epoch of fine-tuning: 50.0% zero" in text
