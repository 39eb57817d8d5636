"""Lesson 13 runs end to end in smoke mode and shows what it promises."""

import math
import re
from pathlib import Path

from notebook_runner import outputs_of, run_notebook

ROOT = Path(__file__).resolve().parents[1]


def _floats(pattern, text):
    found = re.findall(pattern, text)
    return [float(v) for x in found for v in (x if isinstance(x, tuple) else (x,))]


def test_lesson_11_runs_in_smoke_mode():
    nb = run_notebook(ROOT / "notebooks" / "13_frontiers.ipynb", timeout=600)
    text = "".join(o.get("text", "") for o in outputs_of(nb, "stream"))
    # 1: masked attention == SDPA, block-sparse == dense masked; block-sparse saves memory at the longest T
    assert len(_floats(r"largest difference to SDPA: (\S+)", text)) == 2
    assert max(_floats(r"largest difference to SDPA: (\S+)", text)) < 1e-5
    assert max(_floats(r"block-sparse vs dense: (\S+)", text)) < 1e-5
    assert _floats(r"uses ([\d.]+)x less memory", text)[0] > 2
    # 2: three tiny GPTs trained; losses finite and below the untrained ln(128); utilisation measured
    losses = _floats(r"val loss ([\d.]+)", text)
    assert len(losses) == 3 and all(0 < v < math.log(128) for v in losses)
    assert text.count("busiest expert's share") == 2
    # 3: ensembles measured against the best single model
    ens = _floats(r"best single \(\w+\): ([\d.]+)\s+majority vote: ([\d.]+)\s+average: ([\d.]+)\s+stacking: ([\d.]+)", text)
    assert len(ens) == 4 and all(0.5 < a <= 1 for a in ens)
    assert text.count("seed ensemble,") == 2
    # 4: attacks before and after adversarial training, on digits and on text embeddings
    clean = _floats(r"clean accuracy: standard ([\d.]+)", text)
    assert clean and clean[0] > 0.5
    pgd = _floats(r"under PGD at eps=0.1: standard ([\d.]+) -> adversarially trained ([\d.]+)", text)
    assert len(pgd) == 2 and pgd[0] < clean[0]
    assert text.count("text head,") == 2
    # 5: fairness gaps before and after reweighing
    gaps = _floats(r"demographic parity gap ([\d.]+)\s+equalized odds gap ([\d.]+)", text)
    assert len(gaps) == 4 and all(0 <= g <= 1 for g in gaps)
    # 6: per-sample grads agree; more noise -> smaller epsilon; FedAvg measured
    assert _floats(r"vmap equals the loop \(max difference (\S+)\)", text)[0] < 1e-5
    eps = [float(e) for e in re.findall(r"epsilon\s+([\d.]+|inf)", text)]
    assert len(eps) >= 3 and eps[0] == math.inf and eps[1] > eps[-1] > 0
    assert re.search(r"FedAvg after \d+ rounds: IID [\d.]+, label-skewed [\d.]+; centralised [\d.]+", text)
    # each section's conclusion and the summary table are Markdown built from the run's numbers
    md = "".join(o["data"]["text/markdown"] for o in outputs_of(nb, "display_data") if "text/markdown" in o.get("data", {}))
    assert md.count("**What we measured") >= 9, md[:500]
    assert re.search(r"the block-sparse sliding window used [\d.]+× less memory", md)
    assert re.search(r"reweighing moves the demographic-parity gap from [\d.]+ to [\d.]+", md)
    assert re.search(r"FedAvg reaches [\d.]+ with IID clients and [\d.]+ with label-skewed ones", md)
    assert "| DP gap plain -> reweighed |" in md
    images = [o for o in outputs_of(nb) if "image/png" in o.get("data", {})]
    assert len(images) >= 8  # attention, MoE, ensembles, attack curves, adversarial digits, fairness, DP, FedAvg
    widgets = [o for o in outputs_of(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) >= 2  # the attention explorer and the privacy explorer
