"""Lesson 08 runs end to end in smoke mode (offline) and shows what it promises."""

import re
from pathlib import Path

from notebook_runner import outputs_of, run_notebook

ROOT = Path(__file__).resolve().parents[1]


def test_lesson_08_runs_in_smoke_mode_offline():
    nb = run_notebook(ROOT / "notebooks" / "08_generative.ipynb", timeout=600)
    text = "".join(o.get("text", "") for o in outputs_of(nb, "stream") if o.get("name") == "stdout")
    assert not outputs_of(nb, "error")
    # section 1: the from-scratch Fréchet distance equals the closed form on known Gaussians
    m = re.search(r"closed form ([\d.]+) \| sqrtm ([\d.]+) \| eigen-decomposition ([\d.]+)", text)
    assert m, text[:800]
    assert abs(float(m.group(1)) - float(m.group(2))) < 1e-5 and abs(float(m.group(1)) - float(m.group(3))) < 1e-5
    assert re.search(r"real held-out digits vs the training digits: Fréchet distance [\d.]+, \d+ classes", text)
    # section 2: reparameterization and KL agree with torch.distributions
    m = re.search(r"KL by hand ([\d.]+) \| torch.distributions ([\d.]+) \| tutorlib ([\d.]+)", text)
    assert m and max(float(g) for g in m.groups()) - min(float(g) for g in m.groups()) < 1e-5
    assert re.search(r"2-D VAE on digits .*ELBO -[\d.]+", text)
    # section 3: one line per β of the sweep
    assert len(re.findall(r"β = +[\d.]+: reconstruction", text)) == 5
    # sections 4-7: every GAN run is scored with the judge
    for name in ("DCGAN", "D wins (minimax loss)", "D wins + non-saturating loss", "D wins + spectral norm",
                 "D wins + label smoothing", "Adam defaults", "Adam defaults + minibatch std", "TTUR",
                 "conditional GAN", "VAE (β=1, 8-d)"):
        assert re.search(rf"{re.escape(name)}.*FD +[\d.]+", text), name
    assert re.search(r"the classifier agrees with the requested digit on [\d.]+%", text)
    # section 8: text to image, scored per attribute on seen and held-out captions
    assert "caption encoder: picks the right caption" in text
    assert re.search(r"held-out 'red circle' captions +judge agrees on: color [\d.]+%", text)
    images = [o for o in outputs_of(nb) if "image/png" in o.get("data", {})]
    assert len(images) >= 15
    widgets = [o for o in outputs_of(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) >= 2  # live dashboards + the latent explorer
    # each section's conclusion and the summary table are Markdown built from the run's numbers
    md = "".join(o["data"]["text/markdown"] for o in outputs_of(nb, "display_data") if "text/markdown" in o.get("data", {}))
    assert md.count("**What we measured") >= 11, md[:500]
    assert re.search(r"Real held-out digits sit at Fréchet distance [\d.]+ from the training digits", md)
    assert re.search(r"from β = 0\.5 to β = 8 the KL goes from [\d.]+ to [\d.]+ nats", md)
    assert re.search(r"\| D wins \+ spectral norm \| [\d.]+ \| \d+ \| [\d.]+ \| [\d.]+ \|", md)
    assert re.search(r"ranked by Fréchet distance .*\(\d+/10 classes\)", md)
    assert re.search(r"held-out \*red circle\* captions on color \d+%", md)
    assert re.search(r"lesson ran in \d+ s", md)
