"""Lesson 13's widgets react to their controls, and the module's docstring examples run."""

import doctest
import importlib
import pkgutil

import matplotlib
import pytest

matplotlib.use("Agg")

import tutorlib.frontiers as frontiers
from tutorlib.frontiers.widgets import AttentionExplorer, PrivacyExplorer, draw_attention_pattern, pattern_mask


def test_attention_explorer_first_slider_changes_the_output():
    ex = AttentionExplorer(pattern="sliding window", T=64, window=12, block=8)
    assert "tutorlib-widget" in ex.box._dom_classes
    first = list(ex.controls)[0]
    assert first == "window"  # the browser test moves the first slider
    before = (ex.status.value, ex.last["pairs"], ex.renders)
    ex.controls["window"].value = 4
    assert ex.renders == before[2] + 1 and ex.last["pairs"] < before[1] and ex.status.value != before[0]
    ex.controls["pattern"].value = "full"
    assert ex.last["density"] > 0.5 and ex.last["tiles"] == ex.last["tiles_full"]
    ex.controls["pattern"].value = "block-sparse (BigBird)"
    assert ex.last["tiles"] < ex.last["tiles_full"]


def test_privacy_explorer_more_noise_less_epsilon():
    ex = PrivacyExplorer(noise_multiplier=1.0, sample_rate=0.05, steps=200)
    eps1 = ex.last["epsilon"]
    ex.controls["noise_multiplier"].value = 2.0
    assert ex.last["epsilon"] < eps1 and ex.renders == 2 and "ε =" in ex.status.value
    ex.controls["steps"].value = 2000
    assert ex.last["epsilon"] > eps1 / 4


def test_drawing_functions():
    fig, s = draw_attention_pattern("sliding window", 32, 4, 8)
    assert fig.axes[0].get_xlabel() == "key position j" and fig.axes[0].get_title()
    assert s["pairs"] == int(pattern_mask("sliding window", 32, 4, 8).sum())
    with pytest.raises(ValueError, match="unknown pattern"):
        pattern_mask("dilated", 8, 2, 2)


def test_docstring_examples_run():
    failed, attempted = 0, 0
    for info in pkgutil.iter_modules(frontiers.__path__):
        if info.name == "features":  # loads MiniLM; covered by the lesson test
            continue
        mod = importlib.import_module(f"tutorlib.frontiers.{info.name}")
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        failed += res.failed
        attempted += res.attempted
    assert attempted > 40 and failed == 0
