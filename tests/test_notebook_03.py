"""Lesson 03 runs end to end in smoke mode and shows what it promises."""

import re
from pathlib import Path

from notebook_runner import outputs_of, run_notebook

ROOT = Path(__file__).resolve().parents[1]


def test_lesson_03_runs_in_smoke_mode():
    nb = run_notebook(ROOT / "notebooks" / "03_efficient_training.ipynb", timeout=600)
    text = "".join(o.get("text", "") for o in outputs_of(nb, "stream"))
    markdown = "".join(o["data"].get("text/markdown", "") for o in outputs_of(nb) if "data" in o)
    assert "| fp16 | 65536 |" in markdown                       # the loss-scaling report
    assert "largest weight difference, grad_accum=4 x 8 vs batch 32" in text
    assert "kept for backward" in text and "checkpointing keeps" in text
    assert "replicas identical after training: True" in text and "rank 1/2" in text
    assert "MFU" in text and "| fp32 baseline |" in markdown and "| activation checkpointing |" in markdown
    assert markdown.count("**What we measured") == 10, markdown
    # ZeRO / FSDP: the memory arithmetic for the lesson's models, and the FSDP run on two CPU processes
    assert "| MiniLM | 22,713,986 | 8 | 363.4 MB | 124.9 MB | 85.2 MB | 45.4 MB |" in markdown, markdown
    assert "| 7.5B model (ZeRO paper) | 7,500,000,000 | 64 | 120.0 GB | 31.4 GB | 16.6 GB | 1.9 GB |" in markdown
    assert "| FSDP rank 0 of 2 |" in markdown and "| FSDP rank 1 of 2 |" in markdown
    assert "each FSDP rank held 50% of the parameters, 50% of the gradients and 50% of the Adam state" in markdown
    fsdp = re.search(r"largest weight difference, FSDP on 2 processes vs 1 process: ([0-9.e+-]+)", text)
    assert fsdp and float(fsdp.group(1)) < 1e-4, text
    images = [o for o in outputs_of(nb) if "image/png" in o.get("data", {})]
    assert len(images) >= 3      # value histograms, precision curves, technique bars (the widget plot lives in widget state)
    widgets = [o for o in outputs_of(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, "the loss-scale explorer was not displayed"
