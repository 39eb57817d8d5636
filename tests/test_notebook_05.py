"""Lesson 05 (compression) runs end to end in smoke mode and shows its plots, tables and the pruning widget."""

from __future__ import annotations

from notebook_runner import ROOT, outputs_of, run_notebook


def test_lesson_05_runs_in_smoke_mode():
    nb = run_notebook(ROOT / "notebooks" / "05_compression.ipynb", timeout=600)
    text = "".join(o.get("text", "") for o in outputs_of(nb, "stream"))
    images = [o for o in outputs_of(nb) if "image/png" in o.get("data", {})]
    widgets = [o for o in outputs_of(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(images) >= 7, f"expected the lesson's figures, got {len(images)}"
    assert widgets, "the sparsity explorer (and the live training dashboard) should display widgets"
    # the measured sections all reported
    for needle in ("identical masks: True", "same codes as torch.quantize_per_tensor: True", "teacher (fine-tuned MiniLM)",
                   "Pareto front (latency):", "distilled student:", "| variant | params |"):
        assert needle in text, f"missing output {needle!r}"
    # the naive-zeroing demo shows the zeros coming back, the masked version keeps them
    assert "after one epoch of fine-tuning: 50.0% zero" in text
