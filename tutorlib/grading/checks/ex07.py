"""Checks for lesson 07 (multimodal CLIP): InfoNCE, the contrastive step, prompt ensembling, recall@k,
the prompt-ensembling experiment and reading the held-out confusion matrix.

Every check follows the protocol (:mod:`tutorlib.grading.protocol`): ``inputs`` draws the data from the
generator it is given, ``call`` runs the learner's code and returns plain data, ``compare`` checks it
against :mod:`tutorlib.multimodal` (whose InfoNCE is tested against ``transformers``' CLIP loss). For the
experiment and the confusion matrix, ``call`` returns the trained CLIP's weights and config and the
held-out embeddings, and ``compare`` rebuilds the model and re-measures, so made-up figures fail.

>>> import torch
>>> from tutorlib.multimodal import contrastive_loss
>>> float(contrastive_loss(torch.eye(3), torch.eye(3), 0.0)) > 0
True
"""

from __future__ import annotations

import json
import math
import zlib
from collections import Counter
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F

from ..compare import CheckFailed, describe, expect_close, expect_finite, expect_number, expect_tensor
from ..protocol import Learner, exercise

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


def _tiny_clip(seed: int, device: torch.device):
    from tutorlib.multimodal import build_caption_tokenizer, build_clip

    tok = build_caption_tokenizer()
    model = build_clip(tok, width=16, layers=1, heads=2, projection_dim=8, patch_size=8, seed=seed)
    return model.to(device), tok


def _seed(gen: torch.Generator, high: int = 2**31 - 1) -> int:
    return int(torch.randint(0, high, (1,), generator=gen))


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


@exercise("ex07_1", points=2, timeout=60)
class ClipLossCheck:
    """``clip_loss(image_emb, text_emb, logit_scale)``: symmetric InfoNCE equal to the reference; grads reach the scale."""

    names = ("clip_loss",)
    reference = ("tutorlib.multimodal.contrastive_loss",)
    hints = (
        "L2-normalise both embeddings (F.normalize(x, dim=-1)); the logits are their cosines times logit_scale.exp().",
        "the i-th image matches the i-th text: the targets are torch.arange(batch size).",
        "the loss is symmetric: the mean of the image→text cross-entropy (logits) and the text→image one (logits.T).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        base = torch.randn(5, 8, generator=gen)
        norms = torch.tensor([0.1, 1.0, 3.0, 10.0, 0.5])[:, None]
        return {"cases": [("a batch of 6 random pairs, D=8, logit_scale=log(1/0.07)", torch.randn(6, 8, generator=gen),
                           torch.randn(6, 8, generator=gen), math.log(1 / 0.07)),
                          ("5 nearly matching pairs of very different norms, logit_scale=2.0",
                           base * norms, (base + 0.3 * torch.randn(5, 8, generator=gen)) * norms.flip(0), 2.0)],
                "grad_img": torch.randn(4, 8, generator=gen), "grad_txt": torch.randn(4, 8, generator=gen)}

    def call(self, learner: Learner, inputs: dict) -> dict:
        fn, dev = learner.function("clip_loss"), learner.device
        outs = [learner.call(fn, img.to(dev), txt.to(dev), torch.tensor(scale, device=dev), name="clip_loss")
                for _, img, txt, scale in inputs["cases"]]
        scale = torch.tensor(1.5, device=dev, requires_grad=True)
        loss = learner.call(fn, inputs["grad_img"].to(dev), inputs["grad_txt"].to(dev), scale, name="clip_loss", mutable=(2,))
        grad, error = None, None
        if isinstance(loss, torch.Tensor) and loss.requires_grad:
            try:
                loss.backward()
                grad = scale.grad
            except Exception as exc:  # noqa: BLE001
                error = f"{type(exc).__name__}: {exc}"
        return {"outs": outs, "grad": grad, "error": error}

    def compare(self, inputs: dict, outputs: dict) -> None:
        from tutorlib.multimodal import contrastive_loss

        for (label, img, txt, scale), out in zip(inputs["cases"], outputs["outs"]):
            scale_t = torch.tensor(scale)
            what = f"clip_loss(...) on {label}"
            expect_tensor(out, what, shape=(), device=self.device)
            expect_finite(out, what)
            out = out.detach().cpu()
            ref = contrastive_loss(img, txt, scale_t)
            logits = scale_t.exp() * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).t()
            target = torch.arange(len(img))
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
        if outputs["error"]:
            raise CheckFailed(f"clip_loss(...) with a logit_scale that requires grad failed in backward: {outputs['error']}")
        grad = outputs["grad"]
        if grad is None or not torch.isfinite(grad):
            raise CheckFailed("no gradient reached logit_scale: compute with the tensor itself (logit_scale.exp()), not "
                              "float(logit_scale) or .item(), so the temperature can be learned")
        ref_scale = torch.tensor(1.5, requires_grad=True)
        contrastive_loss(inputs["grad_img"], inputs["grad_txt"], ref_scale).backward()
        expect_close(grad.cpu(), ref_scale.grad, "the gradient of clip_loss with respect to logit_scale", atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------- ex07_2: the contrastive step


def _clip_batch(tok: Any, ds_seed: int, device: torch.device) -> dict[str, torch.Tensor]:
    from tutorlib.data import ShapesDataset
    from tutorlib.multimodal import clip_collate

    ds = ShapesDataset(5, seed=ds_seed)
    batch = clip_collate(tok, 32)([ds[i] for i in range(5)])
    return {k: v.to(device) for k, v in batch.items()}


@exercise("ex07_2", points=2, timeout=60)
class ClipStepCheck:
    """``clip_step(trainer, batch)``: a loss equal to CLIP's own on the same batch, with gradients reaching the temperature."""

    names = ("clip_step",)
    reference = ("tutorlib.multimodal.contrastive_step",)
    hints = (
        "run trainer.model on the batch's pixel_values, input_ids and attention_mask; its outputs hold logits_per_image.",
        "apply the symmetric InfoNCE to outputs.logits_per_image (they already include the learnable temperature).",
        "return {'loss': loss} with the loss tensor itself (no .item(), no torch.no_grad()): the Trainer calls backward on it.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"seed": _seed(gen), "ds_seed": _seed(gen, 1000)}

    def call(self, learner: Learner, inputs: dict) -> dict:
        fn, dev = learner.function("clip_step"), learner.device
        model, tok = _tiny_clip(inputs["seed"], dev)
        batch = _clip_batch(tok, inputs["ds_seed"], dev)
        trainer = SimpleNamespace(model=model, unwrapped_model=model, device=dev)
        out = learner.call(fn, trainer, batch, name="clip_step", mutable=(0,))
        if not isinstance(out, dict) or "loss" not in out:
            raise CheckFailed(f"clip_step returned {describe(out)}, expected a dict with a 'loss' tensor: return {{'loss': loss}}")
        loss = out["loss"]
        if not isinstance(loss, torch.Tensor):
            return {"loss": loss}
        has_graph = loss.grad_fn is not None
        reached = False
        if has_graph and loss.numel() == 1:
            loss.backward()
            reached = model.logit_scale.grad is not None
        return {"loss": loss.detach(), "has_graph": has_graph, "scale_grad": reached}

    def compare(self, inputs: dict, outputs: dict) -> None:
        loss = expect_tensor(outputs["loss"], "out['loss']", shape=())
        expect_finite(loss, "out['loss']")
        if not outputs["has_graph"]:
            raise CheckFailed("out['loss'] has no gradient (grad_fn is None): do not compute it under torch.no_grad() "
                              "or call .detach()/.item() on it — the Trainer calls backward on it")
        model, tok = _tiny_clip(inputs["seed"], torch.device("cpu"))
        batch = _clip_batch(tok, inputs["ds_seed"], torch.device("cpu"))
        with torch.no_grad():
            ref = model(**batch, return_loss=True)
        hint = "run the model on pixel_values, input_ids and attention_mask and apply the symmetric InfoNCE to outputs.logits_per_image"
        logits = ref.logits_per_image
        target = torch.arange(5)
        loss = loss.cpu()
        if torch.allclose(loss, F.cross_entropy(logits, target), atol=1e-5):
            hint = "that is only the image→text half: average it with the text→image cross-entropy (logits.T)"
        expect_close(loss, ref.loss, "out['loss'] on a batch of 5 shapes", atol=1e-5, rtol=1e-4, hint=hint)
        if not outputs["scale_grad"]:
            raise CheckFailed("the loss does not depend on the model's logit_scale: use the model's own logits "
                              "(outputs.logits_per_image), which include the learnable temperature")


# --------------------------------------------------------------------------- ex07_3: prompt ensembling

_CLASSNAMES = ["red circle", "blue square", "green cross"]
_TEMPLATES = ["a small {} at the top", "a large {} on the left", "a {}", "the {} shape"]


@exercise("ex07_3", points=2, timeout=60)
class EnsembleWeightsCheck:
    """``ensemble_weights(encode_text, classnames, templates)``: (C, D) unit rows equal to the reference."""

    names = ("ensemble_weights",)
    reference = ("tutorlib.multimodal.zero_shot_weights",)
    hints = (
        "for each class, fill every template with its name (t.format(c)), encode those prompts and L2-normalise each embedding.",
        "average the normalised prompt embeddings of a class, then normalise the average again: one unit row per class.",
        "build the prompts class by class ([t.format(c) for c in classnames for t in templates]) so reshaping to (C, T, D) keeps them apart.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        order = torch.randperm(len(_TEMPLATES), generator=gen).tolist()
        return {"cases": [("one template", [_TEMPLATES[order[0]]]), ("four templates", [_TEMPLATES[i] for i in order])]}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, encode = learner.function("ensemble_weights"), word_hash_encoder()
        return [learner.call(fn, encode, list(_CLASSNAMES), tpl, name="ensemble_weights") for _, tpl in inputs["cases"]]

    def compare(self, inputs: dict, outputs: list) -> None:
        from tutorlib.multimodal import zero_shot_weights

        encode, classnames = word_hash_encoder(), _CLASSNAMES
        for (label, tpl), out in zip(inputs["cases"], outputs):
            what = f"ensemble_weights(encode_text, 3 classes, {label})"
            expect_tensor(out, what, shape=(3, 12))
            expect_finite(out, what)
            out = out.detach().cpu().float()
            ref = zero_shot_weights(encode, classnames, tpl)
            norms = out.norm(dim=-1)
            if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
                raise CheckFailed(f"the rows of {what} have norms {[round(float(n), 3) for n in norms]}, expected 1: "
                                  "normalise the averaged embedding again (F.normalize(mean, dim=-1))")
            hint = ""
            if len(tpl) > 1:
                emb = encode([t.format(c) for c in classnames for t in tpl]).reshape(3, len(tpl), -1)
                no_pre = F.normalize(emb.mean(1), dim=-1)
                mixed = F.normalize(F.normalize(encode([t.format(c) for t in tpl for c in classnames]), dim=-1)
                                    .reshape(3, len(tpl), -1).mean(1), dim=-1)
                if torch.allclose(out, no_pre, atol=1e-4):
                    hint = ("normalise each prompt's embedding before averaging, otherwise long prompts (larger norms) "
                            "dominate the class embedding")
                elif torch.allclose(out, mixed, atol=1e-4):
                    hint = ("the prompts of different classes got mixed: build them class by class "
                            "([t.format(c) for c in classnames for t in templates]) before reshaping to (C, T, D)")
            expect_close(out, ref, what, atol=1e-4, rtol=1e-4, hint=hint or
                         "row c should be normalize(mean over templates t of normalize(encode_text([t.format(c)])))")


# --------------------------------------------------------------------------- ex07_4: recall@k


@exercise("ex07_4", points=2, timeout=60)
class RecallAtKCheck:
    """``recall_at_k(similarity, positives, k)``: a float equal to the reference, in both directions."""

    names = ("recall_at_k",)
    reference = ("tutorlib.multimodal.recall_at_k",)
    hints = (
        "rows are queries: take the k most similar gallery items of each row (similarity.topk(k, dim=1).indices).",
        "a query counts as 1 if ANY of its top k items is a positive (positives.gather(1, top).any(1)); recall@k is the mean over queries.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        sim = torch.randn(12, 15, generator=gen)
        groups_q = torch.randint(6, (12,), generator=gen)
        groups_g = torch.cat([torch.arange(6), torch.randint(6, (9,), generator=gen)])
        pos = groups_q[:, None] == groups_g[None, :]
        sim[pos] += 0.8  # make a few queries easy so recall is neither 0 nor 1
        cases = []
        for label, s, p in (("image → text (12 queries, 15 gallery items)", sim, pos),
                            ("text → image (the transposed similarity and positives)", sim.t().contiguous(), pos.t().contiguous())):
            if not bool(p.any(dim=1).all()):
                p = p.clone()
                p[~p.any(dim=1), 0] = True
            cases += [(label, s, p, k) for k in (1, 3)]
        return {"cases": cases}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, dev, outs = learner.function("recall_at_k"), learner.device, []
        for _, s, p, k in inputs["cases"]:
            try:
                outs.append(learner.call(fn, s.to(dev), p.to(dev), k, name="recall_at_k"))
            except CheckFailed as exc:  # reported at this case, after the earlier cases are judged
                outs.append({"error": str(exc)})
                break
        return outs

    def compare(self, inputs: dict, outputs: list) -> None:
        from tutorlib.multimodal import recall_at_k as reference

        for (label, s, p, k), got in zip(inputs["cases"], outputs):
            what = f"recall_at_k for {label} with k={k}"
            if isinstance(got, dict) and "error" in got:
                raise CheckFailed(got["error"])
            got = expect_number(got, f"the result of {what}", float)
            want = reference(s, k, p)
            if abs(got - want) > 1e-6:
                diag = torch.eye(*s.shape, dtype=torch.bool)
                hint = ""
                top = s.topk(k, dim=1).indices
                precision = p.gather(1, top).float().mean().item()

                def near(fn: Any) -> bool:
                    try:
                        return abs(got - fn()) < 1e-6
                    except ValueError:  # that reading has a query without any correct item: not what the learner did
                        return False

                if abs(got - precision) < 1e-6:
                    hint = "that is precision@k: a query counts as 1 if ANY of its top k items is correct"
                elif near(lambda: reference(s, k, diag)):
                    hint = "use the positives matrix, not only the diagonal: identical captions are all correct"
                elif near(lambda: reference(s.t(), k, p.t())):
                    hint = "rows are queries: take topk over dim=1 of the similarity as given"
                elif near(lambda: reference(s, k + 1, p)):
                    hint = "you looked at the top k + 1 items: similarity.topk(k, dim=1)"
                raise CheckFailed(f"{what}: got {got:.4f}, expected {want:.4f}" + (f": {hint}" if hint else ""))


# --------------------------------------------------------------------------- ex07_5: prompt-ensembling experiment


def _experiment_data(learner: Learner) -> dict[str, Any]:
    model = learner.get("model")
    learner.get("tokenizer")
    if not hasattr(model, "get_text_features") or not hasattr(model, "config"):
        raise CheckFailed("`model` is no longer the CLIP model trained above: re-run the training section")
    return {"config": json.loads(model.config.to_json_string()),
            "state": {k: v.detach() for k, v in model.state_dict().items()},
            "img": learner.get("heldout_img_emb"), "labels": learner.get("heldout_labels")}


def _rebuild(outputs: dict[str, Any]) -> tuple[Any, Any, torch.Tensor, torch.Tensor]:
    from transformers import CLIPConfig, CLIPModel

    from tutorlib.multimodal import build_caption_tokenizer

    img = expect_tensor(outputs["img"], "heldout_img_emb").detach().cpu().float()
    labels = expect_tensor(outputs["labels"], "heldout_labels", shape=img.shape[:1]).cpu()
    model = CLIPModel(CLIPConfig.from_dict(outputs["config"]))
    model.load_state_dict({k: v.cpu() for k, v in outputs["state"].items()})
    return model.eval(), build_caption_tokenizer(), img, labels


@exercise("ex07_5", points=2, timeout=60)
class EnsemblingExperimentCheck:
    """``single_acc``, ``ensemble_acc``, ``ensemble_gain`` measured on the held-out pairs match a recomputation.

    ``call`` returns the trained CLIP's config and weights, the held-out image embeddings and the three
    figures; ``compare`` rebuilds the model and measures both accuracies itself.
    """

    names = ("model", "tokenizer", "heldout_img_emb", "heldout_labels", "single_acc", "ensemble_acc", "ensemble_gain")
    hints = (
        "build the class weights twice with your ensemble_weights and the trained model's text encoder: with SHAPE_TEMPLATES[:1] and with all of SHAPE_TEMPLATES.",
        "score heldout_img_emb against heldout_labels over all 20 SHAPE_CLASSNAMES (zero_shot_accuracy); store fractions in [0, 1].",
        "ensemble_gain = ensemble_acc - single_acc.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Learner, inputs: dict) -> dict:
        data = _experiment_data(learner)
        for n in ("single_acc", "ensemble_acc", "ensemble_gain"):
            if n not in learner.ns:
                raise CheckFailed(f"`{n}` is not defined: run your experiment cell and store the result in `{n}`")
            data[n] = learner.ns[n]
        return data

    def compare(self, inputs: dict, outputs: dict) -> str:
        from functools import partial

        from tutorlib.multimodal import SHAPE_CLASSNAMES, SHAPE_TEMPLATES, encode_texts, zero_shot_accuracy, zero_shot_weights

        values = {n: expect_number(outputs[n], f"`{n}`", float) for n in ("single_acc", "ensemble_acc", "ensemble_gain")}
        model, tok, img, labels = _rebuild(outputs)
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


@exercise("ex07_6", points=1, timeout=60)
class ReadConfusionCheck:
    """``worst_class`` (the held-out class with the lowest accuracy) and ``mistaken_for`` (its most frequent wrong prediction)."""

    names = ("model", "tokenizer", "heldout_img_emb", "heldout_labels", "worst_class", "mistaken_for")
    hints = (
        "the diagonal of the held-out confusion matrix is each class's accuracy: worst_class is the held-out class with the lowest.",
        "mistaken_for is the column with the largest count in worst_class's row, off the diagonal (None if it is never wrong).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Learner, inputs: dict) -> dict:
        data = _experiment_data(learner)
        for n in ("worst_class", "mistaken_for"):
            if n not in learner.ns:
                raise CheckFailed(f"`{n}` is not defined: write your reading of the plot into `{n}`")
            data[n] = learner.ns[n]
        return data

    def compare(self, inputs: dict, outputs: dict) -> str | None:
        from tutorlib.multimodal import held_out_classnames

        worst, mistaken = outputs["worst_class"], outputs["mistaken_for"]
        model, tok, img, labels = _rebuild(outputs)
        table = reference_heldout_confusion(model, tok, img, labels, held_out_classnames())
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
