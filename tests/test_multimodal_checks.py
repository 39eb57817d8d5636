"""Lesson 07's exercise checks: reference answers pass, typical mistakes get the precise message, stubs are not attempted."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F

from tutorlib.grading.registry import run_check
from tutorlib import multimodal as mm
from mutants_table import own

_own_recall = own(mm.recall_at_k)  # the learner's copy: the library's own object is flagged


def clip_loss(image_emb, text_emb, logit_scale):
    img, txt = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    logits = logit_scale.exp() * img @ txt.T
    t = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def clip_step(trainer, batch):
    out = trainer.model(pixel_values=batch["pixel_values"], input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return {"loss": mm.info_nce(out.logits_per_image)}


def ensemble_weights(encode_text, classnames, templates):
    emb = F.normalize(encode_text([t.format(c) for c in classnames for t in templates]).float(), dim=-1)
    return F.normalize(emb.reshape(len(classnames), len(templates), -1).mean(1), dim=-1)


def recall_at_k(similarity, positives, k):
    return positives.gather(1, similarity.topk(k, dim=1).indices).any(dim=1).float().mean().item()


def stub(*args, **kwargs):
    raise NotImplementedError("ex07_k: write your answer here")


def result(ex_id, **ns):
    return run_check(ex_id, ns, device="cpu")


@pytest.mark.parametrize("ex_id, ns", [
    ("ex07_1", {"clip_loss": clip_loss}),
    ("ex07_2", {"clip_step": clip_step}),
    ("ex07_3", {"ensemble_weights": ensemble_weights}),
    ("ex07_4", {"recall_at_k": recall_at_k}),
])
def test_reference_answers_pass_and_stubs_are_not_attempted(ex_id, ns):
    res = result(ex_id, **ns)
    assert res.status == "pass", res.message
    name = next(iter(ns))
    assert result(ex_id, **{name: stub}).status == "not_attempted"
    assert "is not defined" in result(ex_id).message


def test_clip_loss_mistakes_are_named():
    def unnormalised(i, t, s):
        logits = s.exp() * i @ t.T
        y = torch.arange(len(i))
        return (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y)) / 2

    def one_way(i, t, s):
        logits = s.exp() * F.normalize(i, dim=-1) @ F.normalize(t, dim=-1).T
        return F.cross_entropy(logits, torch.arange(len(i)))

    def no_exp(i, t, s):
        logits = s * F.normalize(i, dim=-1) @ F.normalize(t, dim=-1).T
        y = torch.arange(len(i))
        return (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y)) / 2

    def item(i, t, s):
        return clip_loss(i, t, torch.tensor(s.item()))

    def in_place(i, t, s):
        i /= i.norm(dim=-1, keepdim=True)
        return clip_loss(i, t, s)

    assert "L2-normalise both embeddings" in result("ex07_1", clip_loss=unnormalised).message
    assert "symmetric" in result("ex07_1", clip_loss=one_way).message
    assert "*log* inverse temperature" in result("ex07_1", clip_loss=no_exp).message
    assert "no gradient reached logit_scale" in result("ex07_1", clip_loss=item).message
    assert "changed its input `i` in place" in result("ex07_1", clip_loss=in_place).message


def test_clip_step_mistakes_are_named():
    def detached(trainer, batch):
        return {"loss": clip_step(trainer, batch)["loss"].detach()}

    def one_way(trainer, batch):
        out = trainer.model(**batch)
        return {"loss": F.cross_entropy(out.logits_per_image, torch.arange(len(out.logits_per_image)))}

    def bare(trainer, batch):
        return clip_step(trainer, batch)["loss"]

    assert "grad_fn is None" in result("ex07_2", clip_step=detached).message
    assert "image→text half" in result("ex07_2", clip_step=one_way).message
    assert "expected a dict with a 'loss' tensor" in result("ex07_2", clip_step=bare).message


def test_ensemble_weights_mistakes_are_named():
    def no_prenorm(enc, classes, templates):
        emb = enc([t.format(c) for c in classes for t in templates]).float()
        return F.normalize(emb.reshape(len(classes), len(templates), -1).mean(1), dim=-1)

    def no_renorm(enc, classes, templates):
        emb = F.normalize(enc([t.format(c) for c in classes for t in templates]).float(), dim=-1)
        return emb.reshape(len(classes), len(templates), -1).mean(1)

    def mixed(enc, classes, templates):
        emb = F.normalize(enc([t.format(c) for t in templates for c in classes]).float(), dim=-1)
        return F.normalize(emb.reshape(len(classes), len(templates), -1).mean(1), dim=-1)

    assert "normalise each prompt's embedding before averaging" in result("ex07_3", ensemble_weights=no_prenorm).message
    assert "expected 1" in result("ex07_3", ensemble_weights=no_renorm).message
    assert "prompts of different classes got mixed" in result("ex07_3", ensemble_weights=mixed).message


def test_recall_mistakes_are_named():
    def precision(sim, pos, k):
        return pos.gather(1, sim.topk(k, dim=1).indices).float().mean().item()

    def diagonal(sim, pos, k):
        return _own_recall(sim, k, torch.eye(*sim.shape, dtype=torch.bool))

    def as_tensor(sim, pos, k):
        return torch.tensor(recall_at_k(sim, pos, k))

    assert "precision@k" in result("ex07_4", recall_at_k=precision).message
    assert "use the positives matrix" in result("ex07_4", recall_at_k=diagonal).message
    assert "call .item()" in result("ex07_4", recall_at_k=as_tensor).message


@pytest.fixture(scope="module")
def experiment_ns():
    tok = mm.build_caption_tokenizer()
    model = mm.build_clip(tok, width=32, layers=1, heads=2, patch_size=8, seed=3)
    from tutorlib.data import ShapesDataset

    ds = ShapesDataset(40, seed=3, only=mm.HELD_OUT_PAIRS)
    img, _, _ = mm.embed_pairs(model, tok, ds)
    return {"model": model, "tokenizer": tok, "heldout_img_emb": img, "heldout_labels": mm.shape_labels(ds)}


def test_ensembling_experiment_check(experiment_ns):
    ns = dict(experiment_ns)
    enc = partial(mm.encode_texts, ns["model"], ns["tokenizer"])
    single = mm.zero_shot_accuracy(ns["heldout_img_emb"], ns["heldout_labels"],
                                   mm.zero_shot_weights(enc, mm.SHAPE_CLASSNAMES, mm.SHAPE_TEMPLATES[:1]))
    ens = mm.zero_shot_accuracy(ns["heldout_img_emb"], ns["heldout_labels"],
                                mm.zero_shot_weights(enc, mm.SHAPE_CLASSNAMES, mm.SHAPE_TEMPLATES))
    ok = dict(ns, single_acc=single, ensemble_acc=ens, ensemble_gain=ens - single)
    res = run_check("ex07_5", ok, device="cpu")
    assert res.status == "pass", res.message
    wrong = dict(ok, ensemble_acc=ens + 0.1, ensemble_gain=ens + 0.1 - single)
    assert "ensemble_acc" in run_check("ex07_5", wrong, device="cpu").message
    assert "is not defined" in run_check("ex07_5", ns, device="cpu").message
    if ens > 0.01:
        pct = dict(ok, ensemble_acc=100 * ens)
        assert "percentage" in run_check("ex07_5", pct, device="cpu").message


def test_confusion_reading_check(experiment_ns):
    from tutorlib.grading.checks.ex07 import reference_heldout_confusion

    ns = dict(experiment_ns)
    table = reference_heldout_confusion(ns["model"], ns["tokenizer"], ns["heldout_img_emb"], ns["heldout_labels"],
                                        mm.held_out_classnames())
    worst = min(table, key=lambda k: table[k]["accuracy"])
    mistakes = table[worst]["mistakes"]
    mistaken = mistakes.most_common(1)[0][0] if mistakes else None
    res = run_check("ex07_6", dict(ns, worst_class=worst, mistaken_for=mistaken), device="cpu")
    assert res.status == "pass", res.message
    best = max(table, key=lambda k: table[k]["accuracy"])
    if table[best]["accuracy"] > table[worst]["accuracy"]:
        assert "another held-out class is lower" in run_check("ex07_6", dict(ns, worst_class=best, mistaken_for=None),
                                                              device="cpu").message
    assert "expected one of the held-out class names" in run_check(
        "ex07_6", dict(ns, worst_class="pink circle", mistaken_for=None), device="cpu").message


def test_checks_leave_the_learner_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    result("ex07_2", clip_step=clip_step)
    assert torch.equal(before, torch.get_rng_state())
