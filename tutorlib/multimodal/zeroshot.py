"""Zero-shot classification with a CLIP model: class names → prompts → text embeddings → a linear classifier.

A class is represented by the (normalised) text embedding of a prompt such as "a small red circle
at the top"; an image is assigned to the class whose embedding is most similar. *Prompt
ensembling* averages the embeddings of several templates per class (then renormalises), which
removes wording the class name does not determine. On the shapes, some (colour, shape) pairs are
held out of training (:data:`HELD_OUT_PAIRS`): classifying them tests compositional generalisation.

>>> import torch
>>> from tutorlib.multimodal.zeroshot import zero_shot_weights, zero_shot_predict
>>> fake_encoder = lambda texts: torch.stack([torch.tensor([float(len(t)), 1.0]) for t in texts])
>>> w = zero_shot_weights(fake_encoder, ["cat", "horse"], ["a {}", "a photo of a {}"])
>>> tuple(w.shape)
(2, 2)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch.nn import functional as F

from tutorlib.data import SHAPES
from tutorlib.multimodal.captions import SHAPE_CLASSNAMES, shape_class_index

__all__ = [
    "HELD_OUT_PAIRS", "held_out_classnames", "zero_shot_weights", "zero_shot_logits", "zero_shot_predict",
    "zero_shot_accuracy", "shapes_zero_shot",
]

#: (colour, shape) pairs never shown in training: every colour and every shape is still seen, in other pairs.
HELD_OUT_PAIRS = (("red", "circle"), ("green", "square"), ("blue", "triangle"), ("yellow", "cross"),
                  ("purple", "square"))

TextEncoder = Callable[[list[str]], torch.Tensor]


def held_out_classnames(pairs: Sequence[tuple[str, str]] = HELD_OUT_PAIRS) -> list[str]:
    """The class names ("red circle", …) of held-out pairs.

    >>> held_out_classnames()[:2]
    ['red circle', 'green square']
    """
    return [SHAPE_CLASSNAMES[shape_class_index(c, s)] for c, s in pairs]


def zero_shot_weights(encode_text: TextEncoder, classnames: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """One unit-norm text embedding per class, averaged over ``templates`` (prompt ensembling): (C, D).

    ``encode_text(list_of_texts) -> (N, D)`` is any text encoder, e.g.
    ``functools.partial(encode_texts, model, tokenizer)``. Each prompt embedding is L2-normalised
    before averaging (so no template dominates), and the mean is normalised again.

    >>> enc = lambda texts: torch.eye(3)[[len(t) % 3 for t in texts]]
    >>> zero_shot_weights(enc, ["ab"], ["{}"])
    tensor([[0., 0., 1.]])
    """
    classnames, templates = list(classnames), list(templates)
    if not classnames:
        raise ValueError("classnames is empty: pass at least one class name")
    if not templates or any(not isinstance(t, str) or "{}" not in t for t in templates):
        raise ValueError(f"templates must be strings with a '{{}}' slot for the class name, got {templates!r}")
    prompts = [t.format(c) for c in classnames for t in templates]
    emb = encode_text(prompts)
    if not isinstance(emb, torch.Tensor) or emb.dim() != 2 or emb.shape[0] != len(prompts):
        got = tuple(emb.shape) if isinstance(emb, torch.Tensor) else type(emb).__name__
        raise ValueError(f"encode_text returned {got} for {len(prompts)} prompts, expected ({len(prompts)}, D)")
    emb = F.normalize(emb.float(), dim=-1).reshape(len(classnames), len(templates), -1)
    return F.normalize(emb.mean(dim=1), dim=-1)


def zero_shot_logits(image_emb: torch.Tensor, weights: torch.Tensor, logit_scale: float = 0.0) -> torch.Tensor:
    """Cosine similarity of each image with each class (N, C), times ``exp(logit_scale)``.

    >>> zero_shot_logits(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    tensor([[1., 0.]])
    """
    if image_emb.dim() != 2 or weights.dim() != 2 or image_emb.shape[1] != weights.shape[1]:
        raise ValueError(f"expected image_emb (N, D) and class weights (C, D), got {tuple(image_emb.shape)} "
                         f"and {tuple(weights.shape)}")
    sim = F.normalize(image_emb.float(), dim=-1) @ F.normalize(weights.float(), dim=-1).t()
    return sim * float(torch.as_tensor(logit_scale).exp())


def zero_shot_predict(image_emb: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The index of the most similar class for each image (N,), int64.

    >>> zero_shot_predict(torch.tensor([[0.1, 0.9]]), torch.eye(2))
    tensor([1])
    """
    return zero_shot_logits(image_emb, weights).argmax(dim=1)


def zero_shot_accuracy(image_emb: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> float:
    """Fraction of images whose most similar class is their label.

    >>> zero_shot_accuracy(torch.eye(2), torch.tensor([0, 0]), torch.eye(2))
    0.5
    """
    labels = torch.as_tensor(labels)
    if labels.shape != image_emb.shape[:1]:
        raise ValueError(f"expected one label per image, got {tuple(labels.shape)} labels for {image_emb.shape[0]} images")
    return (zero_shot_predict(image_emb, weights) == labels.cpu()).float().mean().item()


def shapes_zero_shot(image_emb: torch.Tensor, labels: torch.Tensor, encode_text: TextEncoder,
                     templates: Sequence[str], candidates: Sequence[str] = SHAPE_CLASSNAMES) -> dict[str, Any]:
    """Zero-shot (colour, shape) classification of shapes images among ``candidates`` class names.

    ``labels`` index :data:`~tutorlib.multimodal.captions.SHAPE_CLASSNAMES` (see
    :func:`~tutorlib.multimodal.captions.shape_labels`). Returns accuracy, colour accuracy and
    shape accuracy (the predicted pair gets the colour / the shape right) and the predictions,
    as indices into ``SHAPE_CLASSNAMES``.

    >>> enc = lambda texts: torch.randn(len(texts), 4)
    >>> r = shapes_zero_shot(torch.randn(3, 4), torch.tensor([0, 5, 9]), enc, ["a {}"])
    >>> sorted(r)
    ['accuracy', 'colour_accuracy', 'predictions', 'shape_accuracy']
    """
    unknown = [c for c in candidates if c not in SHAPE_CLASSNAMES]
    if unknown:
        raise ValueError(f"unknown class names {unknown}: use names from SHAPE_CLASSNAMES such as 'red circle'")
    weights = zero_shot_weights(encode_text, candidates, templates)
    index = torch.tensor([SHAPE_CLASSNAMES.index(c) for c in candidates])
    pred = index[zero_shot_predict(image_emb, weights)]
    labels = torch.as_tensor(labels).cpu()
    n_shapes = len(SHAPES)
    return {
        "accuracy": (pred == labels).float().mean().item(),
        "colour_accuracy": (pred // n_shapes == labels // n_shapes).float().mean().item(),
        "shape_accuracy": (pred % n_shapes == labels % n_shapes).float().mean().item(),
        "predictions": pred,
    }

