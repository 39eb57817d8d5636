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
    markdown = "".join(o["data"].get("text/markdown", "") for o in outputs_of(nb, "execute_result") if "data" in o)
    # the knowledge base and its leakage bound
    assert re.search(r"48 documents, 144 questions \(36 tune, 108 eval\)", text)
    assert float(re.search(r"eval vs tune question: ([\d.]+)", text).group(1)) <= 0.5
    # retrieval: recall@k printed for both retrievers, non-decreasing in k by construction
    r = {name: tuple(map(float, m)) for name, *m in re.findall(r"(title \+ chunk|chunk alone)\s+recall@1 ([\d.]+)  recall@3 ([\d.]+)  recall@8 ([\d.]+)", text)}
    assert set(r) == {"title + chunk", "chunk alone"} and all(a <= b <= c for a, b, c in r.values())
    # the main table has every condition, and the verdict names the best baseline and a paired SE
    for cond in ("no retrieval", "retrieved (k=", "oracle passage", "untuned", "majority answer", "top passage"):
        assert cond in markdown
    assert "Best baseline by F1" in markdown and "paired SE" in markdown
    # five verbatim answers with and without retrieval
    assert text.count("   no retrieval: ") == text.count("   retrieved   : ") >= 1
    # injection, support, summarization, JSON, judge all measured
    for attack in ("instruction", "fake answer"):
        for name in ("plain prompt", "defended prompt", "filtered passages"):
            assert re.search(rf"{attack}\s+{name}\s+hijacked\s+[\d.]+ %", text)
    assert "caught by the filter" in text
    assert any(verdict in markdown for verdict in ("(it hurt", "(no effect", "(it even helped"))  # the distractor's verdict
    assert re.search(r"unsupported answers, retrieved \(k=\d\)\s+: [\d.]+ %", text)
    assert "ROUGE-L F1" in text and "field accuracy" in text and "agreement" in text and "bits per byte" in text
    assert "| what | measured here |" in markdown
    # a figure and the widget
    assert any("image/png" in o.get("data", {}) for o in outputs_of(nb, "display_data"))
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs_of(nb))
