"""Lesson 04 runs end to end in smoke mode and shows what it promises."""

import re
from pathlib import Path

from notebook_runner import outputs_of, run_notebook

ROOT = Path(__file__).resolve().parents[1]


def test_lesson_04_runs_in_smoke_mode():
    nb = run_notebook(ROOT / "notebooks" / "04_transfer_learning.ipynb", timeout=600)
    text = "".join(o.get("text", "") for o in outputs_of(nb, "stream"))
    markdown = "".join(o["data"].get("text/markdown", "") for o in outputs_of(nb) if "data" in o)
    for method in ("linear probe (same reviews)", "top-1 layer", "top-2 layers", "full fine-tune", "LLRD"):
        assert method in markdown, method
    assert "paraphrase recall@1" in markdown and "drop in recall@1" in text
    assert "| multi-task" in markdown and "single-task: domain" in markdown
    assert "macro F1" in markdown and "confident on average" in text and "weakest domain" in text
    assert markdown.count("**What we measured") == 10, markdown
    # NER: the gazetteer baseline and the MiniLM tagger, entity F1 on seen and unseen names, from the run
    gz = re.search(r"the gazetteer reaches entity F1 ([0-9.]+) \(([0-9.]+) with seen names, ([0-9.]+) with unseen", markdown)
    assert gz and float(gz.group(3)) == 0.0 and "MiniLM tagger" in text, markdown  # a list of seen names finds no new one
    # masked-LM pre-training: masked-token accuracy against the unigram baseline, downstream against random init
    m = re.search(r"masked-token accuracy on validation reviews: MLM ([0-9.]+)%, unigram baseline ([0-9.]+)%", text)
    assert m and 0 <= float(m.group(1)) <= 100, text
    assert "random init" in text and "points with" in markdown
    # the Hugging Face Trainer beside ours: same classifier, same data, a table built from both runs
    hf = re.search(r"transformers\.Trainer: test accuracy ([0-9.]+), ([0-9.]+) s of training", text)
    assert hf and 0.0 <= float(hf.group(1)) <= 1.0, text
    assert "| course `Trainer` (full fine-tune, section 3) | AdamW 5e-5, constant |" in markdown
    assert f"| `transformers.Trainer` | AdamW 5e-5, 10 % warmup + linear decay | {float(hf.group(1)):.3f} |" in markdown
    assert "- `transformers.Trainer`, same data and rate: test accuracy" in markdown   # in the summary
    images = [o for o in outputs_of(nb) if "image/png" in o.get("data", {})]
    assert len(images) >= 7      # accuracy vs params, forgetting, confusion matrix, reliability, per-domain, NER, MLM
    widgets = [o for o in outputs_of(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, "the fine-tuning explorer was not displayed"
