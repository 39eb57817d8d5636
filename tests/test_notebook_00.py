"""Lesson 00 runs end to end in smoke mode and shows what it promises."""

from pathlib import Path

from notebook_runner import outputs_of, run_notebook

ROOT = Path(__file__).resolve().parents[1]


def test_lesson_00_runs_in_smoke_mode():
    nb = run_notebook(ROOT / "notebooks" / "00_welcome.ipynb", timeout=300)
    text = "".join(o.get("text", "") for o in outputs_of(nb, "stream"))
    assert "tutorlib doctor: all checks passed" in text
    assert "val accuracy after epoch 1" in text
    assert "epochs in the resumed history: [1, 2]" in text
    assert "similarity(paraphrase)" in text
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs_of(nb, "display_data"))
    assert markdown.count("**What we measured:**") == 3, markdown   # training, mistakes, similarity
    assert "validation accuracy" in markdown and "cosine similarity" in markdown
    assert "- SmallCNN on 160 digits, 1 epoch(s): val accuracy" in markdown    # the summary, built from the run
    images = [o for o in outputs_of(nb) if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # digits grid, confusion matrix (widget plots live in widget state)
    widgets = [o for o in outputs_of(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) >= 2  # the live dashboard and the playground
