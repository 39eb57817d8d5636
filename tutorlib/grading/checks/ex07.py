"""Checks for lesson 07 (multimodal CLIP): InfoNCE, the contrastive step, prompt ensembling, recall@k,
the prompt-ensembling experiment and reading the held-out confusion matrix.

References are the library's own implementations in :mod:`tutorlib.multimodal` (whose InfoNCE is
tested against ``transformers``' CLIP loss). Inputs come from the check's private generator.

>>> import torch
>>> from tutorlib.multimodal import contrastive_loss
>>> float(contrastive_loss(torch.eye(3), torch.eye(3), 0.0)) > 0
True
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F

from ..compare import CheckFailed, call_safely, describe, expect_close, expect_finite, expect_number, expect_tensor
from ..registry import CheckContext, register

__all__ = ["word_hash_encoder", "reference_heldout_confusion"]


# --------------------------------------------------------------------------- helpers


def word_hash_encoder(dim: int = 12):
    """A deterministic stand-in text encoder: each word has a fixed random vector; a text sums its words
    and is scaled by a length-dependent factor (so embeddings are *not* unit-norm).

    >>> enc = word_hash_encoder(); tuple(enc(["a red circle", "a cat"]).shape)
    (2, 12)
    """
    def vec(word: str) -> torch.Tensor:
        g = torch.Generator().manual_seed(zlib.crc32(word.encode()))
        return torch.randn(dim, generator=g)

    def encode(texts: list[str]) -> torch.Tensor:
        if isinstance(texts, str):
            raise TypeError("encode_text expects a list of strings, got one str")
        return torch.stack([sum(vec(w) for w in t.split()) * (1.0 + len(t) % 5) for t in texts])

    return encode


def _tiny_clip(ctx: CheckContext):
    from tutorlib.multimodal import build_caption_tokenizer, build_clip

    tok = build_caption_tokenizer()
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=ctx.generator))
    model = build_clip(tok, width=16, layers=1, heads=2, projection_dim=8, patch_size=8, seed=seed)
    return model.to(ctx.device), tok


def reference_heldout_confusion(model: Any, tokenizer: Any, image_emb: torch.Tensor, labels: torch.Tensor,
                                classnames: list[str]) -> dict[str, Any]:
    """Per held-out class: zero-shot accuracy (ensembled prompts over all 20 classes) and the mistakes' counts.

    >>> from tutorlib.multimodal import build_caption_tokenizer, build_clip, held_out_classnames
    >>> tok = build_caption_tokenizer(); m = build_clip(tok, width=16, layers=1, heads=2)
    >>> r = reference_heldout_confusion(m, tok, torch.randn(4, 64), torch.tensor([0, 0, 5, 5]), ["red circle", "green square"])
    >>> sorted(r["red circle"])
    ['accuracy', 'mistakes']
    """
    from functools import partial

    from tutorlib.multimodal import SHAPE_CLASSNAMES, SHAPE_TEMPLATES, encode_texts, zero_shot_predict, zero_shot_weights

    weights = zero_shot_weights(partial(encode_texts, model, tokenizer), SHAPE_CLASSNAMES, SHAPE_TEMPLATES)
    pred = zero_shot_predict(image_emb, weights)
    out = {}
    for name in classnames:
        idx = SHAPE_CLASSNAMES.index(name)
        mask = labels.cpu() == idx
        if not mask.any():
            continue
        p = pred[mask]
        out[name] = {"accuracy": (p == idx).float().mean().item(),
                     "mistakes": Counter(SHAPE_CLASSNAMES[i] for i in p.tolist() if i != idx)}
    return out


# --------------------------------------------------------------------------- ex07_1: InfoNCE


@register("ex07_1", points=2, timeout=60)
def check_clip_loss(ctx: CheckContext) -> None:
    """``clip_loss(image_emb, text_emb, logit_scale)``: symmetric InfoNCE equal to the reference; grads reach the scale."""
    from tutorlib.multimodal import contrastive_loss

    clip_loss = ctx.function("clip_loss")
    base = ctx.randn(5, 8)
    norms = torch.tensor([0.1, 1.0, 3.0, 10.0, 0.5], device=ctx.device)[:, None]
    cases = [("a batch of 6 random pairs, D=8, logit_scale=log(1/0.07)", ctx.randn(6, 8), ctx.randn(6, 8), math.log(1 / 0.07)),
             ("5 nearly matching pairs of very different norms, logit_scale=2.0",
              base * norms, (base + 0.3 * ctx.randn(5, 8)) * norms.flip(0), 2.0)]
    for label, img, txt, scale in cases:
        scale_t = torch.tensor(scale, device=ctx.device)
        what = f"clip_loss(...) on {label}"
        out = call_safely(clip_loss, img, txt, scale_t, name="clip_loss")
        expect_tensor(out, what, shape=(), device=img.device)
        expect_finite(out, what)
        ref = contrastive_loss(img, txt, scale_t)
        logits = scale_t.exp() * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).t()
        target = torch.arange(len(img), device=img.device)
        hint = ""
        raw = scale_t.exp() * img @ txt.t()
        if torch.allclose(out, (F.cross_entropy(raw, target) + F.cross_entropy(raw.t(), target)) / 2, atol=1e-5):
            hint = "L2-normalise both embeddings first (F.normalize(x, dim=-1)) so the logits are scaled cosines"
        elif torch.allclose(out, F.cross_entropy(logits, target), atol=1e-5) or torch.allclose(out, F.cross_entropy(logits.t(), target), atol=1e-5):
            hint = "the loss must be symmetric: average the image→text and the text→image cross-entropies"
        elif torch.allclose(out, F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target), atol=1e-5):
            hint = "average the two directions (divide their sum by 2)"
        else:
            plain = scale_t * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).t()
            divided = F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).t() / scale_t
            for wrong, msg in ((plain, "logit_scale is the *log* inverse temperature: multiply by logit_scale.exp()"),
                               (divided, "multiply the cosines by logit_scale.exp(), do not divide by logit_scale")):
                if torch.allclose(out, (F.cross_entropy(wrong, target) + F.cross_entropy(wrong.t(), target)) / 2, atol=1e-5):
                    hint = msg
                    break
        expect_close(out, ref, what, atol=1e-5, rtol=1e-4, hint=hint)
    # The temperature must be learnable: the gradient has to reach logit_scale.
    scale = torch.tensor(1.5, device=ctx.device, requires_grad=True)
    img, txt = ctx.randn(4, 8), ctx.randn(4, 8)
    loss = call_safely(clip_loss, img, txt, scale, name="clip_loss", mutable=(2,))
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        raise CheckFailed("no gradient reached logit_scale: compute with the tensor itself (logit_scale.exp()), not "
                          "float(logit_scale) or .item(), so the temperature can be learned")
    try:
        loss.backward()
    except Exception as exc:  # noqa: BLE001
        raise CheckFailed(f"clip_loss(...) with a logit_scale that requires grad failed in backward: "
                          f"{type(exc).__name__}: {exc}") from None
    if scale.grad is None or not torch.isfinite(scale.grad):
        raise CheckFailed("no gradient reached logit_scale: compute with the tensor itself (logit_scale.exp()), not "
                          "float(logit_scale) or .item(), so the temperature can be learned")
    ref_scale = torch.tensor(1.5, device=ctx.device, requires_grad=True)
    contrastive_loss(img, txt, ref_scale).backward()
    expect_close(scale.grad, ref_scale.grad, "the gradient of clip_loss with respect to logit_scale", atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------- ex07_2: the contrastive step


@register("ex07_2", points=2, timeout=60)
def check_clip_step(ctx: CheckContext) -> None:
    """``clip_step(trainer, batch)``: a loss equal to CLIP's own on the same batch, with gradients reaching the temperature."""
    from tutorlib.multimodal import clip_collate
    from tutorlib.data import ShapesDataset

    clip_step = ctx.function("clip_step")
    model, tok = _tiny_clip(ctx)
    ds = ShapesDataset(5, seed=int(torch.randint(0, 1000, (1,), generator=ctx.generator)))
    batch = clip_collate(tok, 32)([ds[i] for i in range(5)])
    batch = {k: v.to(ctx.device) for k, v in batch.items()}
    trainer = SimpleNamespace(model=model, unwrapped_model=model, device=ctx.device)
    out = call_safely(clip_step, trainer, batch, name="clip_step", mutable=(0,))
    if not isinstance(out, dict) or "loss" not in out:
        raise CheckFailed(f"clip_step returned {describe(out)}, expected a dict with a 'loss' tensor: return {{'loss': loss}}")
    loss = expect_tensor(out["loss"], "out['loss']", shape=())
    expect_finite(loss, "out['loss']")
    if loss.grad_fn is None:
        raise CheckFailed("out['loss'] has no gradient (grad_fn is None): do not compute it under torch.no_grad() "
                          "or call .detach()/.item() on it — the Trainer calls backward on it")
    with torch.no_grad():
        ref = model(**batch, return_loss=True)
    hint = "run the model on pixel_values, input_ids and attention_mask and apply the symmetric InfoNCE to outputs.logits_per_image"
    with torch.no_grad():
        logits = ref.logits_per_image
        target = torch.arange(5, device=logits.device)
        if torch.allclose(loss.detach(), F.cross_entropy(logits, target), atol=1e-5):
            hint = "that is only the image→text half: average it with the text→image cross-entropy (logits.T)"
    expect_close(loss.detach(), ref.loss, "out['loss'] on a batch of 5 shapes", atol=1e-5, rtol=1e-4, hint=hint)
    loss.backward()
    if model.logit_scale.grad is None:
        raise CheckFailed("the loss does not depend on the model's logit_scale: use the model's own logits "
                          "(outputs.logits_per_image), which include the learnable temperature")


# --------------------------------------------------------------------------- ex07_3: prompt ensembling


@register("ex07_3", points=2, timeout=60)
def check_ensemble_weights(ctx: CheckContext) -> None:
    """``ensemble_weights(encode_text, classnames, templates)``: (C, D) unit rows equal to the reference."""
    from tutorlib.multimodal import zero_shot_weights

    ensemble_weights = ctx.function("ensemble_weights")
    encode = word_hash_encoder()
    classnames = ["red circle", "blue square", "green cross"]
    templates = ["a small {} at the top", "a large {} on the left", "a {}", "the {} shape"]
    for label, tpl in (("one template", templates[:1]), ("four templates", templates)):
        what = f"ensemble_weights(encode_text, 3 classes, {label})"
        out = call_safely(ensemble_weights, encode, classnames, tpl, name="ensemble_weights")
        expect_tensor(out, what, shape=(3, 12))
        expect_finite(out, what)
        ref = zero_shot_weights(encode, classnames, tpl)
        norms = out.float().norm(dim=-1)
        if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
            raise CheckFailed(f"the rows of {what} have norms {[round(float(n), 3) for n in norms]}, expected 1: "
                              "normalise the averaged embedding again (F.normalize(mean, dim=-1))")
        hint = ""
        if len(tpl) > 1:
            emb = encode([t.format(c) for c in classnames for t in tpl]).reshape(3, len(tpl), -1)
            no_pre = F.normalize(emb.mean(1), dim=-1)
            mixed = F.normalize(F.normalize(encode([t.format(c) for t in tpl for c in classnames]), dim=-1)
                                .reshape(3, len(tpl), -1).mean(1), dim=-1)
            if torch.allclose(out.float(), no_pre, atol=1e-4):
                hint = ("normalise each prompt's embedding before averaging, otherwise long prompts (larger norms) "
                        "dominate the class embedding")
            elif torch.allclose(out.float(), mixed, atol=1e-4):
                hint = ("the prompts of different classes got mixed: build them class by class "
                        "([t.format(c) for c in classnames for t in templates]) before reshaping to (C, T, D)")
        expect_close(out.float(), ref, what, atol=1e-4, rtol=1e-4, hint=hint or
                     "row c should be normalize(mean over templates t of normalize(encode_text([t.format(c)])))")


# --------------------------------------------------------------------------- ex07_4: recall@k


@register("ex07_4", points=2, timeout=60)
def check_recall_at_k(ctx: CheckContext) -> None:
    """``recall_at_k(similarity, positives, k)``: a float equal to the reference, in both directions."""
    from tutorlib.multimodal import recall_at_k as reference

    recall_at_k = ctx.function("recall_at_k")
    sim = ctx.randn(12, 15)
    groups_q = ctx.randint(6, 12)
    groups_g = torch.cat([torch.arange(6, device=ctx.device), ctx.randint(6, 9)])
    pos = groups_q[:, None] == groups_g[None, :]
    # make a few queries easy so recall is neither 0 nor 1
    sim[pos] += 0.8
    for label, s, p in (("image → text (12 queries, 15 gallery items)", sim, pos),
                        ("text → image (the transposed similarity and positives)", sim.t(), pos.t())):
        if not bool(p.any(dim=1).all()):
            p = p.clone()
            p[~p.any(dim=1), 0] = True
        for k in (1, 3):
            what = f"recall_at_k for {label} with k={k}"
            got = expect_number(call_safely(recall_at_k, s, p, k, name="recall_at_k"), f"the result of {what}", float)
            want = reference(s, k, p)
            if abs(got - want) > 1e-6:
                diag = torch.eye(*s.shape, dtype=torch.bool, device=s.device)
                hint = ""
                top = s.topk(k, dim=1).indices
                precision = p.gather(1, top).float().mean().item()
                if abs(got - precision) < 1e-6:
                    hint = "that is precision@k: a query counts as 1 if ANY of its top k items is correct"
                elif abs(got - reference(s, k, diag)) < 1e-6:
                    hint = "use the positives matrix, not only the diagonal: identical captions are all correct"
                elif abs(got - reference(s.t(), k, p.t())) < 1e-6:
                    hint = "rows are queries: take topk over dim=1 of the similarity as given"
                raise CheckFailed(f"{what}: got {got:.4f}, expected {want:.4f}" + (f": {hint}" if hint else ""))


# --------------------------------------------------------------------------- ex07_5: prompt-ensembling experiment


def _experiment_objects(ctx: CheckContext) -> tuple[Any, Any, torch.Tensor, torch.Tensor]:
    model, tokenizer = ctx.get("model"), ctx.get("tokenizer")
    img = expect_tensor(ctx.get("heldout_img_emb"), "heldout_img_emb")
    labels = expect_tensor(ctx.get("heldout_labels"), "heldout_labels", shape=img.shape[:1])
    if not hasattr(model, "get_text_features"):
        raise CheckFailed("`model` is no longer the CLIP model trained above: re-run the training section")
    return model, tokenizer, img, labels


@register("ex07_5", points=2, timeout=60)
def check_ensembling_experiment(ctx: CheckContext) -> None:
    """``single_acc``, ``ensemble_acc``, ``ensemble_gain`` measured on the held-out pairs match a recomputation."""
    from functools import partial

    from tutorlib.multimodal import SHAPE_CLASSNAMES, SHAPE_TEMPLATES, encode_texts, zero_shot_accuracy, zero_shot_weights

    model, tok, img, labels = _experiment_objects(ctx)
    names = ("single_acc", "ensemble_acc", "ensemble_gain")
    values = {}
    for n in names:
        if n not in ctx.ns:
            raise CheckFailed(f"`{n}` is not defined: run your experiment cell and store the result in `{n}`")
        values[n] = expect_number(ctx.ns[n], f"`{n}`", float)
    enc = partial(encode_texts, model, tok)
    want_single = zero_shot_accuracy(img, labels, zero_shot_weights(enc, SHAPE_CLASSNAMES, SHAPE_TEMPLATES[:1]))
    want_ens = zero_shot_accuracy(img, labels, zero_shot_weights(enc, SHAPE_CLASSNAMES, SHAPE_TEMPLATES))
    for n, want, how in (("single_acc", want_single, "SHAPE_TEMPLATES[:1] (only the first template)"),
                         ("ensemble_acc", want_ens, "all of SHAPE_TEMPLATES")):
        if 1 < values[n] <= 100 and abs(values[n] / 100 - want) < 1e-4:
            raise CheckFailed(f"`{n}` = {values[n]:.4g} looks like a percentage: store a fraction in [0, 1]")
        if abs(values[n] - want) > 1e-4:
            raise CheckFailed(f"`{n}` = {values[n]:.4f}, but zero-shot accuracy on the held-out images over all 20 "
                              f"SHAPE_CLASSNAMES with {how} is {want:.4f}: build the weights with ensemble_weights "
                              "and the trained model's encode_texts, and score heldout_img_emb against heldout_labels")
    if abs(values["ensemble_gain"] - (values["ensemble_acc"] - values["single_acc"])) > 1e-6:
        raise CheckFailed("`ensemble_gain` should be ensemble_acc - single_acc")
    return f"measured: single template {want_single:.3f}, ensemble {want_ens:.3f}"


# --------------------------------------------------------------------------- ex07_6: reading the confusion


@register("ex07_6", points=1, timeout=60)
def check_read_confusion(ctx: CheckContext) -> None:
    """``worst_class`` (the held-out class with the lowest accuracy) and ``mistaken_for`` (its most frequent wrong prediction)."""
    from tutorlib.multimodal import held_out_classnames

    model, tok, img, labels = _experiment_objects(ctx)
    for n in ("worst_class", "mistaken_for"):
        if n not in ctx.ns:
            raise CheckFailed(f"`{n}` is not defined: write your reading of the plot into `{n}`")
    worst, mistaken = ctx.ns["worst_class"], ctx.ns["mistaken_for"]
    held = held_out_classnames()
    table = reference_heldout_confusion(model, tok, img, labels, held)
    if not isinstance(worst, str) or worst not in table:
        raise CheckFailed(f"`worst_class` is {worst!r}, expected one of the held-out class names {list(table)}")
    lowest = min(v["accuracy"] for v in table.values())
    if table[worst]["accuracy"] > lowest + 1e-9:
        raise CheckFailed(f"{worst!r} has zero-shot accuracy {table[worst]['accuracy']:.2f}, but another held-out class "
                          f"is lower ({lowest:.2f}): read the diagonal of the held-out confusion matrix again")
    mistakes = table[worst]["mistakes"]
    if not mistakes:
        if mistaken is not None:
            raise CheckFailed(f"{worst!r} is never misclassified, so `mistaken_for` should be None")
        return None
    top = max(mistakes.values())
    best = sorted(k for k, v in mistakes.items() if v == top)
    if mistaken not in best:
        raise CheckFailed(f"`mistaken_for` is {mistaken!r}, but held-out {worst!r} images are most often predicted as "
                          f"{' or '.join(map(repr, best))} ({top} times): read the row of {worst!r} in the confusion matrix")
    return f"{worst} is mistaken for {mistaken} ({top} of its images)"
