"""Data augmentation for the course's two small data sets: digit images and review texts.

Augmentation shows the model a slightly different version of each training example every epoch
— a digit moved by a pixel, turned a few degrees, with a little noise; a review with a word
dropped or two words swapped — so memorising exact inputs stops paying off. The label must
survive the change: a digit turned 180° is no longer the same digit, and dropping "not" can flip
a review, which is why the strengths stay small.

>>> import torch
>>> img = torch.zeros(1, 8, 8); img[0, 3, 3] = 1.0
>>> shift_image(img, dx=1, dy=0)[0, 3, 4].item()
1.0
>>> import random
>>> token_dropout("the food was not good at all", p=0.3, rng=random.Random(0))  # dropping "not" flips it
'the food was good at all'
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

__all__ = [
    "shift_image",
    "random_shift",
    "rotate_image",
    "random_rotate",
    "add_noise",
    "DigitAugment",
    "token_dropout",
    "word_swap",
    "TextAugment",
    "AugmentedDataset",
]


def _check_image(x: Any, what: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be an image tensor (C, H, W) or a batch (B, C, H, W), got {type(x).__name__}")
    if x.dim() not in (3, 4):
        raise ValueError(f"{what} must have shape (C, H, W) or (B, C, H, W), got {tuple(x.shape)}: "
                         "for digits use load_digits(flat=False)")
    return x


def shift_image(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Move an image (or a batch) ``dx`` pixels right and ``dy`` pixels down; pixels moved in are 0.

    Negative values move left/up. Returns a new tensor of the same shape; content moved past the
    border is lost (no wrap-around, unlike ``torch.roll``).

    >>> x = torch.arange(9.0).reshape(1, 3, 3)
    >>> shift_image(x, dx=1, dy=-1)[0].tolist()
    [[0.0, 3.0, 4.0], [0.0, 6.0, 7.0], [0.0, 0.0, 0.0]]
    """
    x = _check_image(x)
    if not (isinstance(dx, int) and isinstance(dy, int)):
        raise TypeError(f"dx and dy must be ints (whole pixels), got {type(dx).__name__} and {type(dy).__name__}")
    h, w = x.shape[-2], x.shape[-1]
    out = torch.zeros_like(x)
    if abs(dx) >= w or abs(dy) >= h:
        return out
    src_y = slice(max(0, -dy), h - max(0, dy))
    dst_y = slice(max(0, dy), h - max(0, -dy))
    src_x = slice(max(0, -dx), w - max(0, dx))
    dst_x = slice(max(0, dx), w - max(0, -dx))
    out[..., dst_y, dst_x] = x[..., src_y, src_x]
    return out


def random_shift(x: torch.Tensor, max_shift: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift one image by a random whole number of pixels in ``[-max_shift, max_shift]`` along each axis.

    >>> random_shift(torch.ones(1, 8, 8), 1, torch.Generator().manual_seed(0)).shape
    torch.Size([1, 8, 8])
    """
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    if max_shift == 0:
        return _check_image(x).clone()
    dx, dy = torch.randint(-max_shift, max_shift + 1, (2,), generator=generator).tolist()
    return shift_image(x, int(dx), int(dy))


def rotate_image(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate an image (or a batch) by ``degrees`` counter-clockwise about its centre (bilinear, zero fill).

    >>> x = torch.zeros(1, 5, 5); x[0, 2, 4] = 1.0        # a dot right of the centre
    >>> int(rotate_image(x, 90)[0].argmax())              # ends up above it: row 0, column 2
    2
    """
    x = _check_image(x)
    single = x.dim() == 3
    batch = x.unsqueeze(0) if single else x
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    # affine_grid maps output coords to input coords: use the inverse rotation (y axis points down).
    mat = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=batch.dtype, device=batch.device)
    grid = F.affine_grid(mat.expand(batch.shape[0], 2, 3), list(batch.shape), align_corners=False)
    out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[0] if single else out


def random_rotate(x: torch.Tensor, max_degrees: float = 15.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Rotate one image by a random angle in ``[-max_degrees, max_degrees]``.

    >>> random_rotate(torch.ones(1, 8, 8), 10, torch.Generator().manual_seed(0)).shape
    torch.Size([1, 8, 8])
    """
    if max_degrees < 0:
        raise ValueError(f"max_degrees must be >= 0, got {max_degrees}")
    angle = (torch.rand((), generator=generator).item() * 2 - 1) * max_degrees
    return rotate_image(x, angle)


def add_noise(x: torch.Tensor, std: float = 0.05, generator: torch.Generator | None = None,
              clamp: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:
    """Add Gaussian noise of standard deviation ``std`` and clip to ``clamp`` (the digits' [0, 1] range).

    >>> add_noise(torch.zeros(1, 2, 2), std=0.0).tolist()
    [[[0.0, 0.0], [0.0, 0.0]]]
    """
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype) * std
    out = x + noise
    return out.clamp(*clamp) if clamp is not None else out


class DigitAugment:
    """Random shift, rotation and noise for one (C, H, W) image; ``strength`` scales all three at once.

    ``strength=1`` means shifts of up to ``max_shift`` pixels, rotations up to ``max_degrees`` and noise
    ``noise_std``; ``strength=0`` returns the image unchanged.

    >>> aug = DigitAugment(strength=1.0, seed=0)
    >>> aug(torch.ones(1, 8, 8)).shape
    torch.Size([1, 8, 8])
    """

    def __init__(self, strength: float = 1.0, max_shift: int = 1, max_degrees: float = 12.0, noise_std: float = 0.05,
                 seed: int | None = None) -> None:
        if strength < 0:
            raise ValueError(f"strength must be >= 0, got {strength}")
        self.strength = strength
        self.max_shift = int(math.floor(max_shift * strength + 0.5))
        self.max_degrees = max_degrees * strength
        self.noise_std = noise_std * strength
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_image(x)
        if self.strength == 0:
            return x.clone()
        out = random_shift(x, self.max_shift, self.generator) if self.max_shift else x
        if self.max_degrees:
            out = random_rotate(out, self.max_degrees, self.generator)
        if self.noise_std:
            out = add_noise(out, self.noise_std, self.generator)
        return out

    def __repr__(self) -> str:
        return (f"DigitAugment(strength={self.strength}: shift ≤ {self.max_shift}px, rotate ≤ {self.max_degrees:g}°, "
                f"noise std {self.noise_std:g})")


def _words(text: Any) -> list[str]:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return text.split()


def token_dropout(text: str, p: float = 0.1, rng: random.Random | None = None) -> str:
    """Drop each word of ``text`` with probability ``p`` (at least one word is always kept).

    >>> token_dropout("great food", p=0.0)
    'great food'
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"p must be in [0, 1), got {p}")
    words = _words(text)
    if p == 0 or len(words) <= 1:
        return " ".join(words)
    rng = rng or random
    kept = [w for w in words if rng.random() >= p]
    if not kept:
        kept = [words[rng.randrange(len(words))]]
    return " ".join(kept)


def word_swap(text: str, n_swaps: int = 1, rng: random.Random | None = None) -> str:
    """Swap two randomly chosen words, ``n_swaps`` times (EDA's "random swap", Wei & Zou, 2019).

    >>> word_swap("one two", n_swaps=1, rng=random.Random(1))
    'two one'
    """
    if n_swaps < 0:
        raise ValueError(f"n_swaps must be >= 0, got {n_swaps}")
    words = _words(text)
    rng = rng or random
    if len(words) >= 2:
        for _ in range(n_swaps):
            i, j = rng.sample(range(len(words)), 2)
            words[i], words[j] = words[j], words[i]
    return " ".join(words)


class TextAugment:
    """Token dropout with probability ``p_drop`` then ``round(swap_frac · words)`` random word swaps.

    >>> TextAugment(p_drop=0.0, swap_frac=0.0)("kept as is")
    'kept as is'
    """

    def __init__(self, p_drop: float = 0.1, swap_frac: float = 0.1, seed: int | None = None) -> None:
        if not 0.0 <= p_drop < 1.0 or swap_frac < 0:
            raise ValueError(f"need 0 <= p_drop < 1 and swap_frac >= 0, got p_drop={p_drop}, swap_frac={swap_frac}")
        self.p_drop, self.swap_frac = p_drop, swap_frac
        self.rng = random.Random(seed) if seed is not None else None

    def __call__(self, text: str) -> str:
        out = token_dropout(text, self.p_drop, self.rng)
        n = int(round(self.swap_frac * len(out.split())))
        return word_swap(out, n, self.rng) if n else out

    def __repr__(self) -> str:
        return f"TextAugment(p_drop={self.p_drop}, swap_frac={self.swap_frac})"


class AugmentedDataset(Dataset):
    """Wrap a dataset of ``(x, y)`` pairs so that every access returns ``(transform(x), y)`` — a fresh variant each epoch.

    >>> from torch.utils.data import TensorDataset
    >>> ds = AugmentedDataset(TensorDataset(torch.ones(2, 1, 8, 8), torch.tensor([0, 1])), DigitAugment(0.0))
    >>> ds[1][1].item(), len(ds)
    (1, 2)
    """

    def __init__(self, base: Dataset, transform: Callable[[Any], Any]) -> None:
        if not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        item = self.base[i]
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise TypeError(f"expected the base dataset to yield (x, y) pairs, got {type(item).__name__}")
        x, y = item
        return self.transform(x), y
