"""Lesson 02 (regularization) runs end to end in smoke mode and shows what it claims."""

from __future__ import annotations

from notebook_runner import ROOT, outputs_of, run_notebook


def test_lesson_02_runs_and_shows_its_results() -> None:
    nb = run_notebook(ROOT / "notebooks" / "02_regularization.ipynb", timeout=600)
    text = "".join(o.get("text", "") for o in outputs_of(nb, "stream"))
    figures = [o for o in outputs_of(nb) if "image/png" in o.get("data", {})]
    assert len(figures) >= 7, f"expected the lesson's plots, got {len(figures)}"
    widget_cells = [c for c in nb.cells if c.cell_type == "code" and "regularization_explorer(" in c.source]
    assert widget_cells and any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                                for o in widget_cells[0].outputs), "the regularization explorer did not render"
    for needle in ("gap", "stopped after", "best epoch", "zeroed: ours"):
        assert needle in text, f"missing output: {needle!r}"
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs_of(nb, "display_data"))
    for needle in ("TextCNN on reviews", "best single change"):
        assert needle in markdown, f"missing summary line: {needle!r}"
    assert markdown.count("**What we measured") == 9, markdown
    assert "more than one standard error" in markdown and "early stopping trained" in markdown
