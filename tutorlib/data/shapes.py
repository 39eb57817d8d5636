"""Procedurally drawn coloured shapes with captions ("a small red circle at the top"), for CLIP and generators.

Each image is (3, size, size) float32 in [0, 1]; each item also names its colour, shape, size and
position, so zero-shot and caption-agreement scores can be computed exactly. Combinations can be
held out of training (``exclude=[("red", "circle")]``) to test compositional generalisation.

>>> from tutorlib.data import ShapesDataset
>>> ds = ShapesDataset(8, seed=0)
>>> item = ds[0]; tuple(item["image"].shape), isinstance(item["caption"], str)
((3, 32, 32), True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["ShapesDataset", "COLORS", "SHAPES", "SIZES", "POSITIONS", "caption_for", "draw_shape"]

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.15, 0.15),
    "green": (0.15, 0.75, 0.20),
    "blue": (0.15, 0.30, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "purple": (0.60, 0.20, 0.75),
}
SHAPES = ("circle", "square", "triangle", "cross")
SIZES = ("small", "large")
POSITIONS = ("top", "bottom", "left", "right")
_POSITION_TEXT = {"top": "at the top", "bottom": "at the bottom", "left": "on the left", "right": "on the right"}


def caption_for(color: str, shape: str, size: str, position: str) -> str:
    """The caption of one combination.

    >>> caption_for("red", "circle", "small", "top")
    'a small red circle at the top'
    """
    return f"a {size} {color} {shape} {_POSITION_TEXT[position]}"


def draw_shape(color: str, shape: str, size: str, position: str, img_size: int = 32,
               rng: np.random.RandomState | None = None) -> np.ndarray:
    """Draw one shape on a light-grey noisy background; returns (3, img_size, img_size) float32.

    >>> draw_shape("blue", "square", "large", "left").shape
    (3, 32, 32)
    """
    for value, allowed, what in ((color, COLORS, "colour"), (shape, SHAPES, "shape"),
                                 (size, SIZES, "size"), (position, POSITIONS, "position")):
        if value not in allowed:
            raise ValueError(f"unknown {what} {value!r}: use one of {', '.join(allowed)}")
    rng = rng or np.random.RandomState(0)
    s = img_size
    radius = (0.14 if size == "small" else 0.26) * s * rng.uniform(0.9, 1.1)
    centre = {"top": (0.25, 0.5), "bottom": (0.75, 0.5), "left": (0.5, 0.25), "right": (0.5, 0.75)}[position]
    cy = centre[0] * s + rng.uniform(-0.05, 0.05) * s
    cx = centre[1] * s + rng.uniform(-0.05, 0.05) * s
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        mask = dy**2 + dx**2 <= radius**2
    elif shape == "square":
        mask = (np.abs(dy) <= radius * 0.85) & (np.abs(dx) <= radius * 0.85)
    elif shape == "triangle":
        # Upward triangle: below the apex, inside two slanted edges.
        top, bottom = cy - radius, cy + radius * 0.8
        half_width = (yy - top) / (bottom - top) * radius
        mask = (yy >= top) & (yy <= bottom) & (np.abs(dx) <= half_width)
    else:  # cross
        arm = radius * 0.35
        mask = ((np.abs(dy) <= arm) & (np.abs(dx) <= radius)) | ((np.abs(dx) <= arm) & (np.abs(dy) <= radius))
    background = 0.92 + rng.normal(0, 0.03, size=(3, s, s))
    rgb = np.array(COLORS[color], dtype=np.float32)[:, None, None] * rng.uniform(0.9, 1.1)
    img = np.where(mask[None], rgb, background)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class _Combo:
    color: str
    shape: str
    size: str
    position: str


class ShapesDataset(Dataset):
    """``n`` random captioned shapes; items are dicts with image, caption and attribute indices.

    ``exclude`` drops (colour, shape) pairs (e.g. to hold them out of training); ``only`` keeps
    just those pairs (e.g. to evaluate on the held-out ones).

    >>> ds = ShapesDataset(4, exclude=[("red", "circle")])
    >>> all(not (it["color_name"] == "red" and it["shape_name"] == "circle") for it in ds)
    True
    """

    def __init__(self, n: int, img_size: int = 32, seed: int = 0,
                 exclude: Iterable[tuple[str, str]] = (), only: Iterable[tuple[str, str]] | None = None) -> None:
        if n <= 0:
            raise ValueError(f"n must be positive, got {n}")
        if img_size < 16:
            raise ValueError(f"img_size must be at least 16 pixels to draw a shape, got {img_size}")
        exclude = {tuple(p) for p in exclude}
        only_set = {tuple(p) for p in only} if only is not None else None
        for pair in exclude | (only_set or set()):
            if pair[0] not in COLORS or pair[1] not in SHAPES:
                raise ValueError(f"unknown (colour, shape) pair {pair}: colours {list(COLORS)}, shapes {list(SHAPES)}")
        pairs = [(c, s) for c in COLORS for s in SHAPES
                 if (c, s) not in exclude and (only_set is None or (c, s) in only_set)]
        if not pairs:
            raise ValueError("no (colour, shape) pair is left after exclude/only")
        rng = np.random.RandomState(seed)
        self.img_size = img_size
        self.combos: list[_Combo] = []
        images = []
        for _ in range(n):
            c, s = pairs[rng.randint(len(pairs))]
            combo = _Combo(c, s, SIZES[rng.randint(len(SIZES))], POSITIONS[rng.randint(len(POSITIONS))])
            self.combos.append(combo)
            images.append(draw_shape(combo.color, combo.shape, combo.size, combo.position, img_size, rng))
        self.images = torch.from_numpy(np.stack(images))
        self.captions = [caption_for(c.color, c.shape, c.size, c.position) for c in self.combos]

    def __len__(self) -> int:
        return len(self.combos)

    def __getitem__(self, i: int) -> dict:
        c = self.combos[i]
        return {
            "image": self.images[i],
            "caption": self.captions[i],
            "color": list(COLORS).index(c.color),
            "shape": SHAPES.index(c.shape),
            "size": SIZES.index(c.size),
            "position": POSITIONS.index(c.position),
            "color_name": c.color,
            "shape_name": c.shape,
        }
