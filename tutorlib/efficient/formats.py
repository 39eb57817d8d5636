"""Number formats for training: fp32, tf32, bf16 and fp16 — their range and precision, computed and shown on real tensors.

A binary floating-point format is 1 sign bit, ``e`` exponent bits and ``m`` mantissa bits. The
exponent bits set the *range* (largest value, smallest value before underflow to 0), the mantissa
bits the *precision* (the gap ``eps`` between 1 and the next number). bf16 keeps fp32's 8 exponent
bits (same range, 3 significant digits); fp16 has 5 (range only up to 65,504 and down to 6e-8) but
10 mantissa bits; tf32 is what NVIDIA tensor cores use for fp32 matmuls: fp32's range, fp16's precision.

>>> fmt = get_format("bf16")
>>> fmt.bits, fmt.max == torch.finfo(torch.bfloat16).max
(16, True)
>>> round_to(torch.tensor([1.001]), "bf16").item()
1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "NumberFormat",
    "FORMATS",
    "get_format",
    "format_table",
    "round_mantissa",
    "round_to",
    "representation_error",
    "underflow_fraction",
    "overflow_fraction",
    "smallest_safe_scale",
]


@dataclass(frozen=True)
class NumberFormat:
    """A binary floating-point format with ``exponent_bits`` and ``mantissa_bits`` (plus one sign bit).

    All limits are computed from the bit counts (IEEE-754 layout), not looked up.

    >>> f = NumberFormat("fp16", torch.float16, 5, 10)
    >>> f.max, f.smallest_normal == 2.0 ** -14, f.eps
    (65504.0, True, 0.0009765625)
    """

    name: str
    dtype: torch.dtype | None
    exponent_bits: int
    mantissa_bits: int
    note: str = ""

    @property
    def bits(self) -> int:
        """Storage bits: sign + exponent + mantissa (tf32 is stored in 32 bits but computes with 19)."""
        return 1 + self.exponent_bits + self.mantissa_bits

    @property
    def bias(self) -> int:
        return 2 ** (self.exponent_bits - 1) - 1

    @property
    def max(self) -> float:
        """Largest finite value: (2 - 2^-m) · 2^bias."""
        return (2.0 - 2.0 ** -self.mantissa_bits) * 2.0 ** self.bias

    @property
    def smallest_normal(self) -> float:
        """Smallest positive normal value 2^(1-bias): below it precision is lost gradually (subnormals)."""
        return 2.0 ** (1 - self.bias)

    @property
    def smallest_subnormal(self) -> float:
        """Smallest positive value at all, 2^(1-bias-m); anything below half of it rounds to 0 (underflow)."""
        return 2.0 ** (1 - self.bias - self.mantissa_bits)

    @property
    def eps(self) -> float:
        """Gap between 1.0 and the next representable number, 2^-m (relative rounding error ≤ eps/2)."""
        return 2.0 ** -self.mantissa_bits

    @property
    def decimal_digits(self) -> float:
        """Significant decimal digits, (m + 1) · log10(2)."""
        return (self.mantissa_bits + 1) * math.log10(2)


FORMATS: dict[str, NumberFormat] = {
    "fp32": NumberFormat("fp32", torch.float32, 8, 23, "IEEE single precision: the default for weights and optimizer state"),
    "tf32": NumberFormat("tf32", None, 8, 10, "NVIDIA tensor-core format for fp32 matmuls (Ampere+): fp32 range, fp16 precision"),
    "bf16": NumberFormat("bf16", torch.bfloat16, 8, 7, "brain float: fp32's range, 3 significant digits; needs no loss scaling"),
    "fp16": NumberFormat("fp16", torch.float16, 5, 10, "IEEE half precision: small range, needs loss scaling for gradients"),
}


def get_format(fmt: str | NumberFormat) -> NumberFormat:
    """Look a format up by name ('fp32', 'tf32', 'bf16', 'fp16').

    >>> get_format("fp16").exponent_bits
    5
    """
    if isinstance(fmt, NumberFormat):
        return fmt
    if fmt not in FORMATS:
        raise ValueError(f"unknown number format {fmt!r}: use one of {', '.join(FORMATS)}")
    return FORMATS[fmt]


def format_table() -> list[dict[str, object]]:
    """One row per format: bits, exponent/mantissa bits, max, smallest normal/subnormal, eps, decimal digits.

    >>> [row["format"] for row in format_table()]
    ['fp32', 'tf32', 'bf16', 'fp16']
    """
    return [
        {"format": f.name, "bits": f.bits, "exponent": f.exponent_bits, "mantissa": f.mantissa_bits,
         "max": f.max, "smallest normal": f.smallest_normal, "smallest subnormal": f.smallest_subnormal,
         "eps": f.eps, "digits": round(f.decimal_digits, 1)}
        for f in FORMATS.values()
    ]


def round_mantissa(x: torch.Tensor, mantissa_bits: int) -> torch.Tensor:
    """Round fp32 values to ``mantissa_bits`` bits of mantissa (round to nearest, ties to even), keeping fp32's exponent.

    This is how tf32 (10 bits) is emulated on hardware without it; with 7 bits it reproduces bf16
    rounding for every finite value in bf16's range. Returns float32.

    >>> round_mantissa(torch.tensor([1.0 + 2**-11, 1.0 + 3 * 2**-11]), 10).tolist()
    [1.0, 1.001953125]
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"expected a floating-point tensor, got {type(x).__name__ if not isinstance(x, torch.Tensor) else x.dtype}")
    if not 0 <= mantissa_bits <= 23:
        raise ValueError(f"mantissa_bits must be in [0, 23] (fp32 has 23), got {mantissa_bits}")
    x = x.detach().to(torch.float32).contiguous()
    drop = 23 - mantissa_bits
    if drop == 0:
        return x.clone()
    bits = x.view(torch.int32).to(torch.int64)
    lsb = (bits >> drop) & 1
    rounded = (bits + (1 << (drop - 1)) - 1 + lsb) & ~((1 << drop) - 1)
    out = ((rounded + 2**31) % 2**32 - 2**31).to(torch.int32).view(torch.float32)
    return torch.where(torch.isfinite(x), out, x)


def round_to(x: torch.Tensor, fmt: str | NumberFormat) -> torch.Tensor:
    """Store ``x`` in ``fmt`` and read it back as ``x``'s dtype (tf32 is emulated with :func:`round_mantissa`).

    >>> round_to(torch.tensor([70000.0, 1e-9]), "fp16").tolist()
    [inf, 0.0]
    """
    f = get_format(fmt)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("round_to expects a floating-point tensor")
    if f.dtype is None:
        return round_mantissa(x, f.mantissa_bits).to(x.dtype)
    return x.detach().to(f.dtype).to(x.dtype)


def underflow_fraction(values: torch.Tensor, fmt: str | NumberFormat, scale: float = 1.0) -> float:
    """Fraction of the non-zero ``values`` that become exactly 0 when ``values * scale`` is stored in ``fmt``.

    >>> underflow_fraction(torch.tensor([1e-9, 1e-3]), "fp16"), underflow_fraction(torch.tensor([1e-9, 1e-3]), "fp16", scale=1024)
    (0.5, 0.0)
    """
    v = values.detach().float().flatten()
    nonzero = v != 0
    n = int(nonzero.sum())
    if n == 0:
        return 0.0
    stored = round_to(v * scale, fmt)
    return float(((stored == 0) & nonzero).sum()) / n


def overflow_fraction(values: torch.Tensor, fmt: str | NumberFormat, scale: float = 1.0) -> float:
    """Fraction of the finite ``values`` that become ±inf when ``values * scale`` is stored in ``fmt``.

    >>> overflow_fraction(torch.tensor([1.0, 100.0]), "fp16", scale=1000.0)
    0.5
    """
    v = values.detach().float().flatten()
    finite = torch.isfinite(v)
    n = int(finite.sum())
    if n == 0:
        return 0.0
    return float((torch.isinf(round_to(v * scale, fmt)) & finite).sum()) / n


def representation_error(x: torch.Tensor, fmt: str | NumberFormat) -> dict[str, float]:
    """How well ``fmt`` stores the values of ``x``: median/max relative error of the values it keeps, underflow and overflow fractions.

    The relative errors leave out values that underflow to 0 or overflow (those are counted in
    ``underflow``/``overflow``).

    >>> err = representation_error(torch.linspace(1, 2, 101), "bf16")
    >>> err["max_rel_error"] <= get_format("bf16").eps / 2
    True
    """
    f = get_format(fmt)
    v = x.detach().float().flatten()
    stored = round_to(v, f)
    ok = torch.isfinite(stored) & (stored != 0) & (v != 0)
    rel = ((stored[ok] - v[ok]).abs() / v[ok].abs()) if bool(ok.any()) else torch.zeros(1)
    return {
        "format": f.name,
        "median_rel_error": float(rel.median()),
        "max_rel_error": float(rel.max()),
        "underflow": underflow_fraction(v, f),
        "overflow": overflow_fraction(v, f),
    }


def smallest_safe_scale(values: torch.Tensor, fmt: str | NumberFormat = "fp16", max_underflow: float = 0.01,
                        max_log2: int = 32) -> int:
    """Smallest ``k`` ≥ 0 such that scaling by 2^k leaves at most ``max_underflow`` of ``values`` flushed to 0 and none overflowing.

    This is the static loss scale a learner would pick from a gradient histogram; ``GradScaler``
    finds a working scale dynamically instead. Raises ``ValueError`` when no ``k ≤ max_log2`` works.

    >>> smallest_safe_scale(torch.full((10,), 1e-9), "fp16")   # 1e-9 · 2^5 is above half the smallest subnormal
    5
    """
    if not 0 <= max_underflow < 1:
        raise ValueError(f"max_underflow must be in [0, 1), got {max_underflow}")
    for k in range(0, max_log2 + 1):
        s = 2.0 ** k
        if overflow_fraction(values, fmt, s) > 0:
            break
        if underflow_fraction(values, fmt, s) <= max_underflow:
            return k
    raise ValueError(
        f"no power-of-two scale up to 2^{max_log2} keeps the underflow at or below {max_underflow:.1%} "
        f"without overflowing {get_format(fmt).name}: the values span too wide a range for this format (use bf16)"
    )
