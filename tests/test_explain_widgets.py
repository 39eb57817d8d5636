"""The two widgets react to their controls: a new method or sentence gives a new attribution; a new layer/head a new map."""

import numpy as np
import pytest
import torch

from tutorlib.explain.text import load_review_classifier
from tutorlib.explain.widgets import AttentionViewer, ExplainWidget, plot_attention_map


@pytest.fixture(scope="module")
def minilm():
    torch.manual_seed(0)
    return load_review_classifier()


def test_explain_widget_follows_method_and_text(minilm):
    model, tok = minilm
    w = ExplainWidget(model, tok, "Great food!", methods=("attention", "ig"), method_kwargs={"ig": {"steps": 4}})
    assert "tutorlib-widget" in w.box._dom_classes
    assert w.last.method == "attention" and w.last.tokens == ["great", "food", "!"]
    w.method.value = "ig"
    assert w.last.method == "ig" and w.renders == 2
    w.text.value = "The battery died after two days."
    assert w.last.tokens == ["great", "food", "!"]  # editing waits for the button
    w.button.click()
    assert w.last.tokens[:2] == ["the", "battery"] and w.renders == 3
    w.text.value = "   "
    w.button.click()
    assert "empty" in w.status.value and w.renders == 3  # shown, not raised


def test_attention_viewer_draws_the_selected_map(minilm):
    model, tok = minilm
    v = AttentionViewer(model, tok, "Not bad at all.")
    assert v.last_key == (1, 0) and "tutorlib-widget" in v.box._dom_classes
    v.layer.value = 4
    v.head.value = 7
    assert v.last_key == (4, 7)
    drawn = v.last_figure.axes[0].images[0].get_array()
    np.testing.assert_allclose(np.asarray(drawn), v.att[3, 7].numpy(), atol=1e-6)
    v.head.value = "mean"
    np.testing.assert_allclose(np.asarray(v.last_figure.axes[0].images[0].get_array()), v.att[3].mean(0).numpy(),
                               atol=1e-6)
    v.text.value = "Terrible."
    v.button.click()
    assert v.tokens == ["[CLS]", "terrible", ".", "[SEP]"] and v.renders == 5


def test_plot_attention_map_errors():
    att = torch.full((2, 2, 3, 3), 1 / 3)
    with pytest.raises(ValueError, match="layer must be"):
        plot_attention_map(["a", "b", "c"], att, layer=3)
    with pytest.raises(ValueError, match="head must be"):
        plot_attention_map(["a", "b", "c"], att, layer=1, head=9)
    with pytest.raises(ValueError, match="T = 2 tokens"):
        plot_attention_map(["a", "b"], att, layer=1)
