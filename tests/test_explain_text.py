"""explain_text on the MiniLM review classifier and on a toy model whose answer is known."""

import numpy as np
import pytest
import torch
from torch import nn

from tutorlib.explain.attribution import Attribution
from tutorlib.explain.text import (attention_maps, attention_rollout, encode, explain_ig, explain_text,
                                   load_review_classifier, predict_proba)
from tutorlib.explain.gradients import integrated_gradients
from tutorlib.models import load_tokenizer, mean_pool

TEXT = "The staff weren't helpful, but the room was lovely."


@pytest.fixture(scope="module")
def minilm():
    torch.manual_seed(0)
    return load_review_classifier()


# --------------------------------------------------------------------------- a model with a known answer


class _Embeddings(nn.Module):
    def __init__(self, weights: dict[int, float], vocab: int) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, 1)
        with torch.no_grad():
            self.word_embeddings.weight.zero_()
            for i, w in weights.items():
                self.word_embeddings.weight[i] = w

    def forward(self, input_ids):
        return self.word_embeddings(input_ids)


class _Encoder(nn.Module):
    def __init__(self, emb: nn.Module) -> None:
        super().__init__()
        self.embeddings = emb


class BagOfWords(nn.Module):
    """p(positive) = sigmoid(sum of per-token weights): 'lovely' +3, 'helpful' +1, 'weren' −2, everything else 0."""

    def __init__(self, tok) -> None:
        super().__init__()
        ids = {tok.convert_tokens_to_ids(w): s for w, s in (("lovely", 3.0), ("helpful", 1.0), ("weren", -2.0))}
        self.encoder = _Encoder(_Embeddings(ids, tok.vocab_size))

    def forward(self, input_ids, attention_mask=None):
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        s = (self.encoder.embeddings(input_ids)[..., 0] * mask).sum(1)
        return torch.stack([-s / 2, s / 2], 1)


@pytest.mark.parametrize("method,kw", [("shap", {"max_evals": 300}), ("lime", {"num_samples": 200}), ("ig", {"steps": 32})])
def test_every_signed_method_finds_the_words_a_toy_model_uses(method, kw):
    tok = load_tokenizer()
    model = BagOfWords(tok)
    a = explain_text(model, tok, TEXT, method=method, target=1, **kw)
    assert isinstance(a, Attribution) and a.method == method
    tokens = a.tokens
    assert tokens[int(np.argmax(a.scores))] == "lovely"
    assert tokens[int(np.argmin(a.scores))] == "weren"
    assert a.scores[tokens.index("helpful")] > 0
    unused = [i for i, t in enumerate(tokens) if t not in ("lovely", "helpful", "weren")]
    assert np.abs(a.scores[unused]).max() < 0.2 * np.abs(a.scores).max()


# --------------------------------------------------------------------------- the real MiniLM


def test_all_methods_align_with_the_tokenizer(minilm):
    model, tok = minilm
    expected = tok.convert_ids_to_tokens(tok(TEXT)["input_ids"])[1:-1]
    probs = predict_proba(model, tok, [TEXT])[0]
    kws = {"shap": {"max_evals": 40}, "lime": {"num_samples": 30}, "ig": {"steps": 8}, "attention": {}}
    for method, kw in kws.items():
        a = explain_text(model, tok, TEXT, method=method, **kw)
        assert a.tokens == expected, method
        assert a.target == int(np.argmax(probs)) and a.prediction == pytest.approx(probs[a.target], abs=1e-6)
        assert a.input_ids == tok(TEXT)["input_ids"][1:-1]
        assert a.signed == (method != "attention")
        assert "<span" in a._repr_html_()


def test_shap_values_add_up_to_prediction_minus_masked_baseline(minilm):
    model, tok = minilm
    a = explain_text(model, tok, TEXT, method="shap", target=1, max_evals=60)
    total = a.scores.sum() + a.meta["special_value"] + a.meta["base_value"]
    assert total == pytest.approx(a.prediction, abs=1e-5)
    assert a.meta["base_value"] == pytest.approx(predict_proba(model, tok, [" ".join(["[MASK]"] * len(a))])[0, 1],
                                                 abs=1e-5)


def test_ig_convergence_delta_is_small(minilm):
    model, tok = minilm
    a = explain_text(model, tok, TEXT, method="ig", target=0, steps=16)
    gap = a.prediction - predict_proba(model, tok, [" ".join(["[PAD]"] * len(a))])[0, 0]
    assert abs(a.meta["delta"]) < 0.05 * max(abs(gap), 1e-3) + 1e-3


def test_our_integrated_gradients_equal_captum_on_minilm_word_embeddings(minilm):
    model, tok = minilm
    ref = explain_ig(model, tok, TEXT, target=1, steps=6, layer="word_embeddings", rule="riemann_middle",
                     internal_batch_size=6)
    enc = encode(tok, TEXT)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    base_ids = ids.clone()
    base_ids[0, 1:-1] = tok.pad_token_id
    word = model.encoder.embeddings.word_embeddings

    def forward(e):
        out = model.encoder(inputs_embeds=e, attention_mask=mask.expand(len(e), -1))
        return torch.softmax(model.head(mean_pool(out.last_hidden_state, mask.expand(len(e), -1))), -1)

    with torch.no_grad():
        x, b = word(ids), word(base_ids)
    ours, _ = integrated_gradients(forward, x, b, target=1, steps=6)
    np.testing.assert_allclose(ours.sum(-1)[0, 1:-1].numpy(), ref.scores, atol=1e-5, rtol=1e-4)


def test_attention_maps_and_rollout(minilm):
    model, tok = minilm
    tokens, att = attention_maps(model, tok, TEXT)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert att.shape == (6, 12, len(tokens), len(tokens))
    torch.testing.assert_close(att.sum(-1), torch.ones(att.shape[:-1]), atol=1e-4, rtol=0)
    roll = attention_rollout(att)
    torch.testing.assert_close(roll.sum(-1), torch.ones(len(tokens)), atol=1e-5, rtol=0)
    last = explain_text(model, tok, TEXT, method="attention", mode="last", query="cls")
    np.testing.assert_allclose(last.scores, att[-1].mean(0)[0, 1:-1].numpy(), atol=1e-6)


def test_attention_works_on_an_sdpa_encoder_and_restores_it(minilm):
    from tutorlib.models import MiniLMClassifier

    model, tok = minilm
    sdpa = MiniLMClassifier(2).eval()
    assert sdpa.encoder.config._attn_implementation == "sdpa"
    _, att = attention_maps(sdpa, tok, TEXT)
    _, ref = attention_maps(model, tok, TEXT)
    torch.testing.assert_close(att, ref, atol=1e-5, rtol=1e-4)  # same pretrained encoder
    assert sdpa.encoder.config._attn_implementation == "sdpa"


def test_bad_input_errors(minilm):
    model, tok = minilm
    with pytest.raises(ValueError, match="unknown method"):
        explain_text(model, tok, TEXT, method="gradcam")
    with pytest.raises(ValueError, match="empty"):
        explain_text(model, tok, "   ", method="ig")
    with pytest.raises(TypeError, match="one sentence at a time"):
        explain_text(model, tok, [TEXT], method="ig")
    with pytest.raises(ValueError, match="class index"):
        explain_text(model, tok, TEXT, method="attention", target=5)
    with pytest.raises(ValueError, match="max_length"):
        explain_text(model, tok, "word " * 200, method="attention")
    with pytest.raises(ValueError, match="max_evals"):
        explain_text(model, tok, TEXT, method="shap", max_evals=5)
    with pytest.raises(TypeError, match="list of strings"):
        predict_proba(model, tok, TEXT)


def test_faithful_ranking_beats_random_and_attention_is_rejected_on_the_toy_model():
    from tutorlib.explain.faithfulness import deletion_curve, faithfulness_table, random_deletion_curve

    tok = load_tokenizer()
    model = BagOfWords(tok)
    ig = explain_text(model, tok, TEXT, method="ig", target=1, steps=16)
    curve = deletion_curve(model, tok, ig)
    rand = random_deletion_curve(model, tok, ig, n_repeats=20, seed=0)
    assert curve.probs[0] == pytest.approx(ig.prediction, abs=1e-6)
    assert curve.auc < rand.auc - 0.1  # removing 'lovely' first drops p(positive) at once
    reverse = Attribution(ig.tokens, -ig.scores, "reversed", 1, ig.prediction, input_ids=ig.input_ids)
    assert deletion_curve(model, tok, reverse).auc > rand.auc
    table = faithfulness_table(model, tok, {"ig": [ig], "reversed": [reverse]}, n_random=5)
    assert table["ig"]["auc"] < table["random"]["auc"] < table["reversed"]["auc"]
    assert len(table["ig"]["curves"]) == 1 and table["ig"]["aucs"] == [pytest.approx(curve.auc)]
