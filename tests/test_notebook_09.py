"""Lesson 09 runs end to end in smoke mode and shows what it promises."""

import re
from pathlib import Path

from notebook_runner import outputs_of, run_notebook

ROOT = Path(__file__).resolve().parents[1]


def test_lesson_09_runs_in_smoke_mode():
    nb = run_notebook(ROOT / "notebooks" / "09_explainability.ipynb", timeout=600)
    text = "".join(o.get("text", "") for o in outputs_of(nb, "stream"))
    # 1: our exact Shapley values equal shap's
    diff = float(text.split("largest difference to shap: ")[1].split()[0])
    assert diff < 1e-6
    # 2-3: the tabular model, the additivity check and LIME stability were measured
    assert "test accuracy" in text and "model log-odds" in text and "Spearman across seeds" in text
    # 4-10: the classifier was fine-tuned, explained four ways, compared and tested for faithfulness
    assert "val accuracy" in text and "IG convergence delta" in text
    for name in ("shap", "lime", "ig", "attention", "attention (last layer)", "random"):
        assert f"{name:>24}" in text, name
    assert "IG is more faithful than attention rollout on" in text
    # each section's conclusion and the summary table are Markdown built from the run's numbers
    md = "".join(o["data"]["text/markdown"] for o in outputs_of(nb, "display_data") if "text/markdown" in o.get("data", {}))
    assert md.count("**What we measured") >= 10, md[:500]
    assert re.search(r"our exact Shapley values differ from `shap`'s by at most [\d.e+-]+", md)
    assert re.search(r"mean deletion AUC [\d.]+ for IG and [\d.]+ for attention rollout", md)
    assert re.search(r"\| review classifier \| val accuracy [\d.]+% \|", md)
    html = [o for o in outputs_of(nb) if "text/html" in o.get("data", {})]
    assert sum("tutorlib-attribution" in "".join(o["data"]["text/html"]) for o in html) >= 4  # coloured tokens
    images = [o for o in outputs_of(nb) if "image/png" in o.get("data", {})]
    assert len(images) >= 9  # summary, dependence, waterfall, stability, bars, sinks, IG delta, agreement, deletion
    widgets = [o for o in outputs_of(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) >= 3  # the live training dashboard, the attention viewer, the explanation widget
