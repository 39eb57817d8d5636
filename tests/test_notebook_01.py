"""Lesson 01 (optimizers & schedules) runs end to end in smoke mode and shows what it claims."""

from __future__ import annotations

import re

from notebook_runner import ROOT, outputs_of, run_notebook


def test_lesson_01_runs_and_shows_its_results() -> None:
    nb = run_notebook(ROOT / "notebooks" / "01_optimizers.ipynb", timeout=600)
    text = "".join(o.get("text", "") for o in outputs_of(nb, "stream"))
    figures = [o for o in outputs_of(nb) if "image/png" in o.get("data", {})]
    widgets = [o for o in outputs_of(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(figures) >= 10, f"expected the lesson's plots, got {len(figures)}"
    assert len(widgets) >= 2  # trajectory explorer and schedule explorer (plus progress bars)
    diffs = [float(x) for x in re.findall(r"largest weight difference is ([0-9.e+-]+)", text)]
    assert len(diffs) == 3 and max(diffs) < 1e-4, f"from-scratch optimizers differ from torch.optim: {diffs}"
    assert "suggested lr" in text
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs_of(nb, "display_data"))
    for section in ("best lr per batch size", "search, best after the budget", "MiniLM fine-tune at 1e-3"):
        assert section in markdown, f"missing summary line: {section!r}"
    assert markdown.count("**What we measured") == 11, markdown
    assert "float32 rounding: the same computation" in markdown   # from-scratch optimizers equal torch.optim
    assert "with the pruner" in markdown and "best rate per batch size" in markdown
