"""tutorlib.transfer: freezing helpers, layer-wise LR decay, multi-task model and loss, evaluation metrics
(vs scikit-learn), paraphrase retrieval and the fine-tuning explorer."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn

from tutorlib.models import trainable_summary
from tutorlib.transfer import (DOMAINS, MultiTaskModel, MultiTaskReviews, UncertaintyWeights, classification_report,
                               count_trainable, domain_dataset, encoder_layers, expected_calibration_error,
                               f1_from_confusion, freeze, layer_depths, layerwise_lr_groups, multitask_collate,
                               multitask_loss, multitask_step, paraphrase_pairs, paraphrase_retrieval,
                               per_group_results, reliability_bins, report_table, unfreeze,
                               unfreeze_top)


def tiny_bert(n_layers=3, vocab=30522):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=vocab, hidden_size=16, num_hidden_layers=n_layers, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=64))


def tiny_classifier(num_labels=2, n_layers=3):
    from tutorlib.models import MiniLMClassifier

    return MiniLMClassifier(num_labels, encoder=tiny_bert(n_layers))


# ----------------------------------------------------------------------------------------- freezing
def test_unfreeze_top_sets_exactly_the_top_layers_and_head():
    model = tiny_classifier()
    layers = encoder_layers(model)
    for k in range(4):
        unfreeze_top(model, k)
        flags = [all(p.requires_grad for p in layer.parameters()) for layer in layers]
        assert flags == [False] * (3 - k) + [True] * k
        assert not any(p.requires_grad for p in layers[0].parameters()) or k == 3
        assert all(p.requires_grad for p in model.head.parameters())
        assert not any(p.requires_grad for p in model.encoder.embeddings.parameters())
    per_layer = sum(p.numel() for p in layers[0].parameters())
    head = sum(p.numel() for p in model.head.parameters())
    assert count_trainable(unfreeze_top(model, 2)) == 2 * per_layer + head
    assert count_trainable(unfreeze(model)) == sum(p.numel() for p in model.parameters())
    assert trainable_summary(freeze(model)) == {"trainable": 0, "total": sum(p.numel() for p in model.parameters()),
                                                "percent": 0.0, "fraction": 0.0}


def test_unfreeze_top_real_minilm_and_errors():
    from tutorlib.models import MiniLMClassifier

    model = MiniLMClassifier(2)
    assert len(encoder_layers(model)) == 6
    counts = [count_trainable(unfreeze_top(model, k)) for k in range(7)]
    assert counts[0] == 384 * 2 + 2 and counts == sorted(counts) and len(set(counts)) == 7
    with pytest.raises(ValueError, match="between 0 .* and 6"):
        unfreeze_top(model, 7)
    with pytest.raises(TypeError, match="k must be an int"):
        unfreeze_top(model, True)
    with pytest.raises(ValueError, match="cannot find the layer stack"):
        unfreeze_top(nn.Linear(2, 2), 1)


def test_layerwise_lr_groups_rates_and_training_step():
    model = tiny_classifier()
    model.encoder.pooler.requires_grad_(False)
    groups = layerwise_lr_groups(model, lr=1e-3, decay=0.5)
    depths = layer_depths(model)
    assert [g["depth"] for g in groups] == [0, 1, 2, 3, 4]
    for g in groups:
        assert g["lr"] == pytest.approx(1e-3 * 0.5 ** (4 - g["depth"]))
    names = {id(p): n for n, p in model.named_parameters()}
    grouped = [names[id(p)] for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert all(depths[n] == 4 for n in grouped if n.startswith("head"))
    assert all(depths[n] == 0 for n in grouped if "embeddings" in n)
    assert [g["lr"] for g in layerwise_lr_groups(model, 1e-3, 1.0)] == [1e-3] * 5
    opt = torch.optim.AdamW(groups)
    before = model.encoder.embeddings.word_embeddings.weight.detach().clone()
    ids = torch.randint(0, 100, (4, 8))
    nn.functional.cross_entropy(model(ids, torch.ones_like(ids)), torch.tensor([0, 1, 0, 1])).backward()
    opt.step()
    assert not torch.equal(before, model.encoder.embeddings.word_embeddings.weight)
    with pytest.raises(ValueError, match="decay must be in"):
        layerwise_lr_groups(model, 1e-3, 0.0)
    with pytest.raises(ValueError, match="no trainable parameters"):
        layerwise_lr_groups(freeze(model), 1e-3)


def test_tinygpt_depths():
    from tutorlib.models import GPTConfig, TinyGPT

    d = layer_depths(TinyGPT(GPTConfig(n_layer=2, d_model=16, n_head=2)))
    assert d["tok_emb.weight"] == 0 and d["blocks.1.attn.weight"] == 2 and d["ln_f.weight"] == 3


# ----------------------------------------------------------------------------------------- multi-task
def test_multitask_model_loss_and_trainer_step():
    from tutorlib.data import load_reviews
    from tutorlib.models import load_tokenizer
    from tutorlib.train import Trainer

    reviews = load_reviews("train", limit=32)
    data = MultiTaskReviews(reviews)
    assert {d for _, _, d in data} <= set(range(len(DOMAINS)))
    assert domain_dataset(reviews)[0][1] == DOMAINS.index(reviews.domains[0])
    model = MultiTaskModel(encoder=tiny_bert(2))
    collate = multitask_collate(load_tokenizer(), max_length=16)
    batch = collate([data[i] for i in range(4)])
    out = model(batch["input_ids"], batch["attention_mask"])
    assert out["sentiment"].shape == (4, 2) and out["domain"].shape == (4, 8)
    total, parts = multitask_loss(out, {"sentiment": batch["labels"], "domain": batch["domain"]}, {"domain": 0.25})
    manual = (nn.functional.cross_entropy(out["sentiment"], batch["labels"])
              + 0.25 * nn.functional.cross_entropy(out["domain"], batch["domain"]))
    assert total.item() == pytest.approx(manual.item(), rel=1e-6) and set(parts) == {"sentiment", "domain"}
    trainer = Trainer(model, lr=3e-3, batch_size=8, collate_fn=collate, step_fn=multitask_step({"domain": 0.5}),
                      progress=False, log=False)
    history = trainer.fit(data, epochs=4)
    assert history["train_loss"][-1] < history["train_loss"][0]
    logits, targets = Trainer(model, step_fn=multitask_step(report="domain"), collate_fn=collate, progress=False,
                              log=False).predict(data)
    assert logits.shape == (32, 8) and torch.equal(targets, torch.tensor(data.domain_ids))
    with pytest.raises(ValueError, match="unknown task"):
        multitask_loss(out, {"sentiment": batch["labels"], "domain": batch["domain"]}, {"topic": 1.0})
    with pytest.raises(KeyError, match="no targets for task 'domain'"):
        multitask_loss(out, {"sentiment": batch["labels"]})
    with pytest.raises(ValueError, match="report must be one of"):
        multitask_step(report="topic")


def test_uncertainty_weights():
    uw = UncertaintyWeights(["a", "b"])
    with torch.no_grad():
        uw.log_vars["a"].fill_(np.log(2.0))
    loss = uw({"a": torch.tensor(4.0), "b": torch.tensor(1.0)})
    assert loss.item() == pytest.approx(2.0 + np.log(2.0) + 1.0)
    assert uw.weights()["a"] == pytest.approx(0.5)
    with pytest.raises(KeyError, match="missing losses"):
        uw({"a": torch.tensor(1.0)})


# ----------------------------------------------------------------------------------------- evaluation
def test_f1_from_confusion_matches_sklearn():
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    p[p == 2] = 1      # class 2 never predicted: precision undefined -> 0
    cm = torch.tensor(confusion_matrix(y, p, labels=range(4)))
    ours = f1_from_confusion(cm)
    ref = precision_recall_fscore_support(y, p, labels=range(4), zero_division=0)
    for a, b in zip(ours, ref[:3]):
        np.testing.assert_allclose(a.numpy(), b, atol=1e-12)
    rep = classification_report(torch.tensor(p), torch.tensor(y), ["a", "b", "c", "d"])
    assert rep["macro_f1"] == pytest.approx(float(np.mean(ref[2])))
    assert [c["support"] for c in rep["per_class"]] == list(ref[3])
    assert "| **macro** |" in report_table(rep)
    with pytest.raises(ValueError, match="square confusion matrix"):
        f1_from_confusion(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="negative"):
        f1_from_confusion(torch.tensor([[1, -1], [0, 1]]))


def test_reliability_bins_and_ece_against_a_plain_loop():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(500, 3, generator=g), dim=1)
    targets = torch.randint(0, 3, (500,), generator=g)
    bins = reliability_bins(probs, targets, 10)
    conf, pred = probs.max(1)
    ece = 0.0
    for b in range(10):
        lo, hi = b / 10, (b + 1) / 10
        mask = (conf >= lo) & ((conf < hi) if b < 9 else (conf <= hi))
        assert int(mask.sum()) == int(bins["counts"][b])
        if mask.any():
            acc = (pred[mask] == targets[mask]).double().mean().item()
            assert bins["accuracy"][b].item() == pytest.approx(acc)
            ece += mask.double().mean().item() * abs(acc - conf[mask].double().mean().item())
    assert expected_calibration_error(probs, targets, 10) == pytest.approx(ece)
    one_hot = torch.nn.functional.one_hot(targets, 3).float()
    assert expected_calibration_error(one_hot, targets) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="apply softmax"):
        reliability_bins(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="expected probabilities"):
        reliability_bins(torch.rand(4), torch.zeros(4, dtype=torch.long))


def test_per_group_results_and_plots():
    import matplotlib

    matplotlib.use("Agg")
    from tutorlib.transfer import plot_per_group, plot_reliability

    preds = torch.tensor([1, 0, 1, 1, 0, 0])
    y = torch.tensor([1, 1, 1, 0, 0, 0])
    rows = per_group_results(preds, y, ["x", "x", "y", "y", "z", "z"])
    assert [(r["group"], r["n"], r["accuracy"]) for r in rows] == [("x", 2, 0.5), ("y", 2, 0.5), ("z", 2, 1.0)]
    assert plot_per_group(rows, overall=4 / 6).get_title() == "Accuracy per domain"
    ax = plot_reliability(reliability_bins(torch.tensor([[0.8, 0.2], [0.4, 0.6]]), torch.tensor([0, 0])))
    assert ax.get_ylabel() == "accuracy"
    with pytest.raises(ValueError, match="same length"):
        per_group_results(preds, y, ["x"])


# ----------------------------------------------------------------------------------------- similarity
def test_paraphrase_retrieval_metrics():
    e = torch.eye(4)
    perfect = paraphrase_retrieval(e, e)
    assert perfect["recall_at_1"] == 1.0 and perfect["mrr"] == 1.0 and perfect["gap"] == pytest.approx(1.0)
    swapped = paraphrase_retrieval(e, e[[1, 0, 2, 3]])
    assert swapped["recall_at_1"] == 0.5 and swapped["mrr"] == pytest.approx((0.5 + 0.5 + 1 + 1) / 4)
    with pytest.raises(ValueError, match="one shape"):
        paraphrase_retrieval(e, torch.eye(3))
    pairs = paraphrase_pairs()
    assert len(pairs) == 48 and len({a for a, _, _ in pairs}) == 48 and {d for *_, d in pairs} == set(DOMAINS)


def test_pretrained_minilm_finds_paraphrases_and_shuffling_breaks_it():
    from tutorlib.models import load_encoder, load_tokenizer
    from tutorlib.transfer import embed_texts, similarity_eval

    encoder, tok = load_encoder(), load_tokenizer()
    encoder.train()
    result = similarity_eval(encoder, tok)
    assert encoder.training  # mode restored
    assert result["recall_at_1"] >= 0.85 and result["gap"] > 0.3
    pairs = paraphrase_pairs()
    a = embed_texts(encoder, tok, [p[0] for p in pairs])
    assert torch.allclose(a.norm(dim=1), torch.ones(len(a)), atol=1e-5)
    with pytest.raises(ValueError, match="non-empty list"):
        embed_texts(encoder, tok, "just one string")


# ----------------------------------------------------------------------------------------- widget
def test_finetune_explorer_runs_on_click():
    import matplotlib

    matplotlib.use("Agg")
    from tutorlib.data import load_reviews
    from tutorlib.models import load_tokenizer
    from tutorlib.transfer.widgets import FineTuneExplorer

    ex = FineTuneExplorer(load_reviews("train", limit=16), load_reviews("val", limit=8), tokenizer=load_tokenizer(),
                          make_model=lambda: tiny_classifier(n_layers=2), epochs=1, max_length=16, batch_size=8)
    assert ex.k.max == 2 and "tutorlib-widget" in ex.box._dom_classes
    ex.k.value = 0
    ex.lr.value = 1e-3
    ex.button.click()
    ex.run(k=2, lr=1e-4)
    assert [(r["k"], r["lr"]) for r in ex.runs] == [(0, 1e-3), (2, 1e-4)]
    assert ex.runs[0]["trainable"] < ex.runs[1]["trainable"]
    assert 0.0 <= ex.runs[1]["val_accuracy"] <= 1.0
    assert "k=2" in ex.status.value and ex.last_figure is not None
    assert len(ex.last_figure.axes[0].collections) == 2
    with pytest.raises(ValueError, match="must not be empty"):
        FineTuneExplorer([], load_reviews("val", limit=4), make_model=lambda: tiny_classifier())
