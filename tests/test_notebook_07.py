"""Lesson 07 runs end to end in smoke mode (offline) and shows what it promises."""

import re
from pathlib import Path

from notebook_runner import outputs_of, run_notebook

ROOT = Path(__file__).resolve().parents[1]


def test_lesson_07_runs_in_smoke_mode_offline():
    nb = run_notebook(ROOT / "notebooks" / "07_multimodal_clip.ipynb", timeout=600)
    text = "".join(o.get("text", "") for o in outputs_of(nb, "stream") if o.get("name") == "stdout")
    # section 1: the from-scratch loss equals the library's and transformers' on the same input
    m = re.search(r"teaching version ([\d.]+) \| tutorlib\.multimodal\.contrastive_loss ([\d.]+) \| transformers' CLIP loss ([\d.]+)", text)
    assert m and m.group(1) == m.group(2) == m.group(3), text[:500]
    assert "eos_token_id=3" in text
    assert "learned temperature" in text
    for name in ("seen pairs", "held-out pairs", "held-out (5-way)"):
        assert re.search(rf"{re.escape(name)}\s+ensemble \(8\)\s+accuracy [\d.]+", text)
    assert "img→txt R@1" in text and "chance R@1" in text
    # offline: the pretrained path fails fast, says why and what ran instead, and the fallback round trip works
    assert "Pretrained CLIP is not available here" in text and "HF_HUB_OFFLINE" in text
    assert "RAN INSTEAD" in text
    assert re.search(r"agree with the in-memory model on \d+% of these 8 images", text)
    # every section's conclusion and the summary table are Markdown built from the run's numbers
    md = "".join(o["data"]["text/markdown"] for o in outputs_of(nb, "display_data") if "text/markdown" in o.get("data", {}))
    assert md.count("**What we measured") >= 7, md[:500]
    assert re.search(r"validation loss is [\d.]+, against log B = [\d.]+", md)
    assert re.search(r"[\d.]+% on seen pairs and [\d.]+% on held-out pairs among all 20 classes", md)
    assert re.search(r"\d of \d held-out classes are predicted most often as themselves", md)
    assert re.search(r"the ensemble of five templates \(chance 10%\)", md)
    assert "| pretrained CLIP | not available (offline): the fallback ran |" in md
    images = [o for o in outputs_of(nb) if "image/png" in o.get("data", {})]
    assert len(images) >= 10  # temperature, samples, curves, bars, 2 matrices, embedding, digits cm, fallback, photos
    widgets = [o for o in outputs_of(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) >= 2  # live dashboard + retrieval explorer
    assert not outputs_of(nb, "error")
