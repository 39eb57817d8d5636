"""Image–caption data for the lesson: class names and prompt templates, and captioned digits.

Shapes come from :class:`tutorlib.data.ShapesDataset` (captions like "a small red circle at the
top"); :class:`DigitCaptions` turns the 8×8 digits into pairs like ("a photo of the digit seven").
:func:`caption_vocabulary` lists every word those captions and the zero-shot prompts use, so a
word-level tokenizer built from it never meets an unknown word in the lesson.

>>> from tutorlib.multimodal.captions import DigitCaptions, SHAPE_CLASSNAMES
>>> DigitCaptions("val", limit=2)[0]["caption"].split()[-1] in NUMBER_WORDS
True
>>> SHAPE_CLASSNAMES[0]
'red circle'
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from tutorlib.data import COLORS, POSITIONS, SHAPES, SIZES, caption_for, load_digits

__all__ = [
    "NUMBER_WORDS", "DIGIT_TEMPLATES", "DigitCaptions", "SHAPE_CLASSNAMES", "SHAPE_TEMPLATES",
    "SHAPE_SHORT_TEMPLATE", "shape_class_index", "shape_labels", "caption_vocabulary",
]

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

#: Caption templates for digits; training picks one per image, zero-shot can use one or all of them.
DIGIT_TEMPLATES = (
    "a photo of the digit {}",
    "a handwritten {}",
    "the number {}",
    "a blurry image of the digit {}",
    "a small drawing of a {}",
)

#: The 20 (colour, shape) classes, e.g. "red circle": index ``color * len(SHAPES) + shape``.
SHAPE_CLASSNAMES = tuple(f"{c} {s}" for c in COLORS for s in SHAPES)

#: One template per (size, position): the same wording as the training captions. Averaging the
#: text embeddings of all eight is prompt ensembling over the attributes a class name leaves out.
SHAPE_TEMPLATES = tuple(caption_for("COLOR", "circle", size, pos).replace("COLOR circle", "{}")
                        for size in SIZES for pos in POSITIONS)

#: A short prompt ("a red circle") that never appears in training: captions always name size and position.
SHAPE_SHORT_TEMPLATE = "a {}"


def shape_class_index(color: str | int, shape: str | int) -> int:
    """Index of a (colour, shape) pair in :data:`SHAPE_CLASSNAMES`; names or indices.

    >>> shape_class_index("green", "square"), SHAPE_CLASSNAMES[shape_class_index(1, 1)]
    (5, 'green square')
    """
    c = list(COLORS).index(color) if isinstance(color, str) else int(color)
    s = SHAPES.index(shape) if isinstance(shape, str) else int(shape)
    if not (0 <= c < len(COLORS) and 0 <= s < len(SHAPES)):
        raise ValueError(f"unknown colour/shape ({color!r}, {shape!r}): colours {list(COLORS)}, shapes {list(SHAPES)}")
    return c * len(SHAPES) + s


def shape_labels(dataset: Dataset) -> torch.Tensor:
    """The (colour, shape) class index of every item of a :class:`~tutorlib.data.ShapesDataset`, int64.

    >>> from tutorlib.data import ShapesDataset
    >>> shape_labels(ShapesDataset(3)).shape
    torch.Size([3])
    """
    combos = getattr(dataset, "combos", None)
    if combos is not None:
        return torch.tensor([shape_class_index(c.color, c.shape) for c in combos], dtype=torch.long)
    return torch.tensor([shape_class_index(dataset[i]["color"], dataset[i]["shape"]) for i in range(len(dataset))],
                        dtype=torch.long)


class DigitCaptions(Dataset):
    """The 8×8 digits with captions: items ``{"image": (1, 8, 8), "caption": str, "label": int}``.

    Each image gets one template from ``templates`` (seeded, fixed per item), so the text tower
    sees several phrasings of every class.

    >>> ds = DigitCaptions("train", limit=4, templates=("a photo of the digit {}",))
    >>> ds[0]["caption"] == "a photo of the digit " + NUMBER_WORDS[ds[0]["label"]]
    True
    """

    def __init__(self, split: str = "train", templates: Sequence[str] = DIGIT_TEMPLATES, seed: int = 0,
                 limit: int | None = None) -> None:
        templates = tuple(templates)
        if not templates or any("{}" not in t for t in templates):
            raise ValueError(f"templates must be a non-empty list of strings with a '{{}}' slot, got {templates!r}")
        base = load_digits(split, limit=limit)
        self.images, self.labels = base.tensors
        rng = np.random.RandomState(seed)
        self.template_ids = rng.randint(len(templates), size=len(self.labels))
        self.templates = templates
        self.captions = [templates[t].format(NUMBER_WORDS[int(y)]) for t, y in zip(self.template_ids, self.labels)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "caption": self.captions[i], "label": int(self.labels[i])}


def caption_vocabulary(extra: Sequence[str] = ()) -> list[str]:
    """Every word of the shapes captions, the digit captions and the zero-shot prompts (plus ``extra`` texts).

    >>> {"red", "circle", "seven", "photo"} <= set(caption_vocabulary())
    True
    """
    texts = [caption_for(c, s, z, p) for c in COLORS for s in SHAPES for z in SIZES for p in POSITIONS]
    texts += [t.format(n) for t in DIGIT_TEMPLATES for n in NUMBER_WORDS]
    texts += [SHAPE_SHORT_TEMPLATE.format(c) for c in SHAPE_CLASSNAMES]
    texts += ["a photo of a shape", "an image of a", "and", "with", "digit", "shape", "colour", "color"]
    texts += list(extra)
    words: list[str] = []
    for text in texts:
        for w in text.lower().split():
            if w not in words:
                words.append(w)
    return words
