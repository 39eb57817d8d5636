"""Int8 quantization: affine quantize/dequantize from scratch, fake quantization for QAT, and the library paths.

An int8 tensor stores ``q = clamp(round(x / scale) + zero_point, -128, 127)`` and stands for
``(q - zero_point) * scale``. One (scale, zero_point) for the whole tensor is *per-tensor*; one per
output channel (row of a weight matrix) is *per-channel*, which follows each row's own range.

Library paths for a trained model: :func:`quantize_torchao` (torchao's ``quantize_`` with
``Int8DynamicActivationInt8WeightConfig`` or ``Int8WeightOnlyConfig``) and :func:`quantize_legacy`
(the deprecated ``torch.ao.quantization.quantize_dynamic``, fbgemm/oneDNN int8 kernels).
Quantization-aware training: :func:`prepare_qat` wraps each layer so training sees the rounding.

>>> import torch
>>> x = torch.tensor([-1.0, 0.0, 0.5, 2.0])
>>> scale, zp = qparams(x)
>>> q = quantize(x, scale, zp)
>>> q.dtype, bool((dequantize(q, scale, zp) - x).abs().max() <= scale / 2 + 1e-6)
(torch.int8, True)
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from typing import Any, Iterable, Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "INT8_RANGE",
    "qrange",
    "qparams",
    "quantize",
    "dequantize",
    "fake_quantize",
    "quantization_error",
    "fold_batchnorm",
    "FakeQuantize",
    "QATLayer",
    "prepare_qat",
    "observing",
    "calibrate",
    "pack_int4",
    "int8_state_dict",
    "quantize_torchao",
    "quantize_legacy",
    "cpu_int8_support",
]

INT8_RANGE = (-128, 127)


def qrange(bits: int = 8, signed: bool = True) -> tuple[int, int]:
    """The integer range of a ``bits``-wide (signed) code: (-128, 127) for int8, (-8, 7) for int4.

    >>> qrange(8), qrange(4), qrange(8, signed=False)
    ((-128, 127), (-8, 7), (0, 255))
    """
    if not isinstance(bits, int) or not 2 <= bits <= 16:
        raise ValueError(f"bits must be an int in [2, 16], got {bits!r}")
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


def _check_axis(x: torch.Tensor, axis: int | None) -> int | None:
    if axis is None:
        return None
    if not -x.dim() <= axis < x.dim():
        raise ValueError(f"axis {axis} is out of range for a tensor with {x.dim()} dims (shape {tuple(x.shape)})")
    return axis % x.dim()


def _broadcast(p: torch.Tensor, x: torch.Tensor, axis: int | None) -> torch.Tensor:
    """Reshape per-channel parameters (C,) so they broadcast along ``axis`` of ``x``."""
    p = torch.as_tensor(p, device=x.device)
    if axis is None:
        if p.numel() != 1:
            raise ValueError(f"per-tensor quantization takes one scale/zero point, got {p.numel()}: pass axis= for per-channel")
        return p.reshape(())
    if p.numel() != x.shape[axis]:
        raise ValueError(f"per-channel parameters have {p.numel()} values, but axis {axis} of x has {x.shape[axis]}")
    shape = [1] * x.dim()
    shape[axis] = -1
    return p.reshape(shape)


def qparams(x: torch.Tensor, axis: int | None = None, symmetric: bool = False,
            qmin: int = INT8_RANGE[0], qmax: int = INT8_RANGE[1]) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point that map the range of ``x`` (always including 0) onto ``[qmin, qmax]``.

    The same rule as torch's ``MinMaxObserver`` / ``PerChannelMinMaxObserver``: asymmetric uses
    ``scale = (max - min) / (qmax - qmin)``, ``zero_point = qmin - round(min / scale)``; symmetric
    uses ``scale = max|x| / ((qmax - qmin) / 2)`` and zero point 0. ``axis`` gives one pair per
    index along that axis (per-channel). Returns float32 scales and int64 zero points.

    >>> s, z = qparams(torch.tensor([0.0, 2.55]), qmin=0, qmax=255)
    >>> round(float(s), 4), int(z)
    (0.01, 0)
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {type(x).__name__}")
    if x.numel() == 0:
        raise ValueError("cannot choose a scale for an empty tensor")
    if qmin >= qmax:
        raise ValueError(f"qmin must be below qmax, got {qmin} and {qmax}")
    axis = _check_axis(x, axis)
    xd = x.detach().float()
    if axis is None:
        lo, hi = xd.min(), xd.max()
    else:
        moved = xd.movedim(axis, 0).reshape(xd.shape[axis], -1)
        lo, hi = moved.min(dim=1).values, moved.max(dim=1).values
    lo = torch.clamp(lo, max=0.0)
    hi = torch.clamp(hi, min=0.0)
    eps = torch.finfo(torch.float32).eps
    if symmetric:
        scale = torch.clamp(torch.maximum(-lo, hi) / (float(qmax - qmin) / 2), min=eps)
        zero_point = torch.zeros_like(scale, dtype=torch.int64)
        if qmin >= 0:  # unsigned symmetric: centre of the range
            zero_point += (qmin + qmax + 1) // 2
    else:
        scale = torch.clamp((hi - lo) / float(qmax - qmin), min=eps)
        zero_point = torch.clamp(qmin - torch.round(lo / scale), qmin, qmax).to(torch.int64)
    return scale, zero_point


def quantize(x: torch.Tensor, scale: torch.Tensor | float, zero_point: torch.Tensor | int, axis: int | None = None,
             qmin: int = INT8_RANGE[0], qmax: int = INT8_RANGE[1], dtype: torch.dtype = torch.int8) -> torch.Tensor:
    """``clamp(round(x / scale) + zero_point, qmin, qmax)`` as an integer tensor (int8 by default).

    ``axis`` makes ``scale``/``zero_point`` per-channel along that axis. Rounding is half-to-even,
    as in torch's own kernels.

    >>> quantize(torch.tensor([0.1, 0.26, 9.0]), 0.1, 0)
    tensor([ 1,  3, 90], dtype=torch.int8)
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {type(x).__name__}")
    axis = _check_axis(x, axis)
    s = _broadcast(torch.as_tensor(scale, dtype=torch.float32), x, axis)
    z = _broadcast(torch.as_tensor(zero_point), x, axis)
    if bool((s <= 0).any()):
        raise ValueError("scale must be positive")
    q = torch.round(x.float() / s) + z
    return torch.clamp(q, qmin, qmax).to(dtype)


def dequantize(q: torch.Tensor, scale: torch.Tensor | float, zero_point: torch.Tensor | int,
               axis: int | None = None) -> torch.Tensor:
    """``(q - zero_point) * scale`` as float32: the real number each integer code stands for.

    >>> dequantize(torch.tensor([1, 3, 90], dtype=torch.int8), 0.1, 0)
    tensor([0.1000, 0.3000, 9.0000])
    """
    if not isinstance(q, torch.Tensor):
        raise TypeError(f"q must be a tensor of integer codes, got {type(q).__name__}")
    axis = _check_axis(q, axis)
    s = _broadcast(torch.as_tensor(scale, dtype=torch.float32), q, axis)
    z = _broadcast(torch.as_tensor(zero_point), q, axis)
    return (q.to(torch.float32) - z.to(torch.float32)) * s


def fake_quantize(x: torch.Tensor, scale: torch.Tensor | float, zero_point: torch.Tensor | int, axis: int | None = None,
                  qmin: int = INT8_RANGE[0], qmax: int = INT8_RANGE[1]) -> torch.Tensor:
    """Quantize then dequantize, in float, with a straight-through gradient (QAT's building block).

    Forward: ``dequantize(quantize(x))``. Backward: gradient 1 where ``x`` lies inside the
    representable range and 0 where it was clipped — the same as ``torch.fake_quantize_per_tensor_affine``.

    >>> x = torch.tensor([0.04, 0.5, 99.0], requires_grad=True)
    >>> y = fake_quantize(x, 0.1, 0); y.sum().backward()
    >>> [round(v, 4) for v in y.tolist()], x.grad.tolist()
    ([0.0, 0.5, 12.7], [1.0, 1.0, 0.0])
    """
    axis = _check_axis(x, axis)
    s = _broadcast(torch.as_tensor(scale, dtype=torch.float32), x, axis).to(x.dtype)
    z = _broadcast(torch.as_tensor(zero_point), x, axis).to(x.dtype)
    codes = torch.round(x.detach() / s) + z
    inside = ((codes >= qmin) & (codes <= qmax)).to(x.dtype)
    xq = (torch.clamp(codes, qmin, qmax) - z) * s
    # value of xq, gradient of x where inside the range, 0 where clipped
    return xq + (x - x.detach()) * inside


def quantization_error(x: torch.Tensor, axis: int | None = None, symmetric: bool = False,
                       bits: int = 8) -> dict[str, float]:
    """Round-trip error of quantizing ``x`` (per-tensor, or per-channel along ``axis``).

    >>> e = quantization_error(torch.randn(16, 16), axis=0)
    >>> sorted(e)
    ['max_abs', 'mse', 'sqnr_db']
    """
    qmin, qmax = qrange(bits)
    s, z = qparams(x, axis, symmetric, qmin, qmax)
    xr = dequantize(quantize(x, s, z, axis, qmin, qmax), s, z, axis)
    err = (xr - x.float())
    mse = float(err.pow(2).mean())
    sig = float(x.float().pow(2).mean())
    sqnr = 10 * torch.log10(torch.tensor(sig / max(mse, 1e-30))).item()
    return {"mse": mse, "max_abs": float(err.abs().max()), "sqnr_db": sqnr}


# --------------------------------------------------------------------------- quantization-aware training


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    w = conv.weight.detach()
    b = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels, device=w.device, dtype=w.dtype)
    inv = (bn.running_var + bn.eps).rsqrt()
    gamma = bn.weight.detach() if bn.affine else torch.ones_like(inv)
    beta = bn.bias.detach() if bn.affine else torch.zeros_like(inv)
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                       conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
                       device=w.device, dtype=w.dtype)
    with torch.no_grad():
        folded.weight.copy_(w * (gamma * inv).reshape(-1, 1, 1, 1))
        folded.bias.copy_((b - bn.running_mean) * gamma * inv + beta)
    return folded


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` where every Conv2d directly followed by a BatchNorm2d (in a Sequential) absorbs it.

    ``conv → bn`` in eval mode is an affine map per channel, so it equals one conv with scaled
    weights and a shifted bias; int8 deployments quantize that folded conv.

    >>> m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).eval()
    >>> x = torch.randn(1, 1, 5, 5)
    >>> torch.allclose(m(x), fold_batchnorm(m)(x), atol=1e-5)
    True
    """
    new = copy.deepcopy(model).eval()
    for parent in new.modules():
        if not isinstance(parent, nn.Sequential):
            continue
        for i in range(len(parent) - 1):
            if isinstance(parent[i], nn.Conv2d) and isinstance(parent[i + 1], nn.BatchNorm2d):
                if not parent[i + 1].track_running_stats:
                    raise ValueError("cannot fold a BatchNorm without running statistics")
                parent[i] = _fold(parent[i], parent[i + 1])
                parent[i + 1] = nn.Identity()
    return new


class FakeQuantize(nn.Module):
    """Observes the range of what flows through (running min/max) and fake-quantizes it, per tensor.

    The range is updated in training mode, or in eval mode inside :func:`observing`; the first
    observation sets it, later ones move it by ``momentum`` (an exponential moving average).

    >>> fq = FakeQuantize(bits=8); _ = fq(torch.linspace(-1, 1, 11))
    >>> round(float(fq.max_val), 2)
    1.0
    """

    def __init__(self, bits: int = 8, momentum: float = 0.1, symmetric: bool = False) -> None:
        super().__init__()
        self.bits, self.momentum, self.symmetric = bits, momentum, symmetric
        self.qmin, self.qmax = qrange(bits)
        self.observe = False
        self.register_buffer("min_val", torch.tensor(0.0))
        self.register_buffer("max_val", torch.tensor(0.0))
        self.register_buffer("initialized", torch.tensor(False))

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and zero point for the observed range."""
        rng = torch.stack([self.min_val, self.max_val])
        return qparams(rng, None, self.symmetric, self.qmin, self.qmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.observe:
            with torch.no_grad():
                lo, hi = x.detach().min().float(), x.detach().max().float()
                if not bool(self.initialized):
                    self.min_val.copy_(lo)
                    self.max_val.copy_(hi)
                    self.initialized.fill_(True)
                else:
                    self.min_val.lerp_(lo, self.momentum)
                    self.max_val.lerp_(hi, self.momentum)
        if not bool(self.initialized):
            raise RuntimeError("FakeQuantize has seen no data yet: run calibrate(model, batches) or train first")
        scale, zp = self.qparams()
        return fake_quantize(x, scale.to(x.device), zp.to(x.device), None, self.qmin, self.qmax)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, range=[{float(self.min_val):.3g}, {float(self.max_val):.3g}]"


class QATLayer(nn.Module):
    """A Linear or Conv2d that sees quantized inputs (per-tensor, observed) and quantized weights (per-channel, symmetric).

    Training through it teaches the weights to live with the rounding; the float weights are kept
    and quantized again at every forward pass.

    >>> layer = QATLayer(nn.Linear(4, 3), bits=8)
    >>> layer(torch.randn(2, 4)).shape
    torch.Size([2, 3])
    """

    def __init__(self, layer: nn.Module, bits: int = 8, quantize_input: bool = True) -> None:
        super().__init__()
        if not isinstance(layer, (nn.Linear, nn.Conv2d)):
            raise TypeError(f"QATLayer wraps nn.Linear or nn.Conv2d, got {type(layer).__name__}")
        self.layer = layer
        self.bits = bits
        self.qmin, self.qmax = qrange(bits)
        self.input_fq = FakeQuantize(bits) if quantize_input else None

    def weight_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-output-channel symmetric scale and zero point of the current weight."""
        return qparams(self.layer.weight, 0, True, self.qmin, self.qmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_fq is not None:
            x = self.input_fq(x)
        s, z = self.weight_qparams()
        w = fake_quantize(self.layer.weight, s, z, 0, self.qmin, self.qmax)
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, w, self.layer.bias)
        return self.layer._conv_forward(x, w, self.layer.bias)


def prepare_qat(model: nn.Module, bits: int = 8, types: Sequence[type[nn.Module]] = (nn.Linear, nn.Conv2d),
                fold_bn: bool = True) -> nn.Module:
    """A copy of ``model`` with BatchNorms folded and every Linear/Conv2d wrapped in a :class:`QATLayer`.

    Calibrate it (:func:`calibrate`) for post-training quantization, or fine-tune it with the
    Trainer for quantization-aware training. It simulates ``bits``-bit inference in float.

    >>> from tutorlib.models import SmallCNN
    >>> q = prepare_qat(SmallCNN(width=4), bits=4)
    >>> sum(isinstance(m, QATLayer) for m in q.modules())
    3
    """
    new = fold_batchnorm(model) if fold_bn else copy.deepcopy(model)
    new.train(model.training)

    def swap(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, tuple(types)) and not isinstance(child, QATLayer):
                setattr(parent, name, QATLayer(child, bits))
            elif not isinstance(child, QATLayer):
                swap(child)

    if isinstance(new, tuple(types)):
        return QATLayer(new, bits)
    swap(new)
    if not any(isinstance(m, QATLayer) for m in new.modules()):
        raise ValueError(f"no {[t.__name__ for t in types]} layer found to quantize in {type(model).__name__}")
    return new


@contextlib.contextmanager
def observing(model: nn.Module) -> Iterator[nn.Module]:
    """Within this block the model's :class:`FakeQuantize` observers record ranges even in eval mode.

    >>> q = prepare_qat(nn.Linear(2, 2))
    >>> with observing(q):
    ...     _ = q(torch.randn(4, 2))
    """
    fqs = [m for m in model.modules() if isinstance(m, FakeQuantize)]
    for fq in fqs:
        fq.observe = True
    try:
        yield model
    finally:
        for fq in fqs:
            fq.observe = False


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[Any]) -> nn.Module:
    """Post-training calibration: run ``batches`` (tensors or ``(x, y)`` pairs) through the model to set ranges.

    >>> q = calibrate(prepare_qat(nn.Linear(3, 2)), [torch.randn(8, 3)])
    >>> q.input_fq.initialized.item()
    True
    """
    was = model.training
    model.eval()
    n = 0
    with observing(model):
        for batch in batches:
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            dev = next((p.device for p in model.parameters()), torch.device("cpu"))
            model(x.to(dev))
            n += 1
    model.train(was)
    if n == 0:
        raise ValueError("calibrate got no batches: pass a DataLoader or a list of input tensors")
    return model


def pack_int4(q: torch.Tensor, qmin: int = -8) -> torch.Tensor:
    """Pack codes of at most 4 bits two per byte (uint8): what a 4-bit deployment stores.

    >>> pack_int4(torch.tensor([-8, 7, 0], dtype=torch.int8)).tolist()
    [240, 8]
    """
    u = (q.flatten().to(torch.int16) - qmin).to(torch.uint8)
    if bool((u > 15).any()):
        raise ValueError("pack_int4 takes codes that fit in 4 bits (16 levels)")
    if u.numel() % 2:
        u = torch.cat([u, u.new_zeros(1)])
    return u[0::2] | (u[1::2] << 4)


def int8_state_dict(model: nn.Module, pack: bool = True) -> dict[str, torch.Tensor]:
    """What a deployment would store for a QAT/calibrated model: integer weights + scales (+ float biases, buffers).

    Codes of 5–8 bits take one int8 byte each; with ``pack`` codes of at most 4 bits are packed
    two per byte (:func:`pack_int4`), so a 4-bit model really stores half as much.

    >>> sd = int8_state_dict(calibrate(prepare_qat(nn.Linear(4, 2)), [torch.randn(3, 4)]))
    >>> sd["weight_q"].dtype
    torch.int8
    """
    out: dict[str, torch.Tensor] = {}
    qlayers = {n: m for n, m in model.named_modules() if isinstance(m, QATLayer)}
    if not qlayers:
        raise ValueError("no QATLayer in the model: build it with prepare_qat(model) first")
    covered = set()
    for name, m in qlayers.items():
        pre = f"{name}." if name else ""
        s, z = m.weight_qparams()
        codes = quantize(m.layer.weight.detach(), s, z, 0, m.qmin, m.qmax)
        if pack and m.bits <= 4:
            out[pre + "weight_q4"] = pack_int4(codes, m.qmin)
            out[pre + "weight_shape"] = torch.tensor(codes.shape, dtype=torch.int32)
        else:
            out[pre + "weight_q"] = codes
        out[pre + "weight_scale"] = s
        if m.layer.bias is not None:
            out[pre + "bias"] = m.layer.bias.detach()
        if m.input_fq is not None:
            si, zi = m.input_fq.qparams()
            out[pre + "input_scale"], out[pre + "input_zero_point"] = si, zi
        covered.update(f"{pre}{k}" for k in m.state_dict())
    for k, v in model.state_dict().items():
        if k not in covered:
            out[k] = v
    return out


# --------------------------------------------------------------------------- library paths


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    logger = logging.getLogger("torchao")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _check_cpu_model(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    from torch.nn.utils import parametrize

    if any(parametrize.is_parametrized(m) or hasattr(m, "weight_mask") for m in model.modules()):
        raise ValueError("the model carries pruning masks: call tutorlib.compress.make_permanent(model) first")


def quantize_torchao(model: nn.Module, mode: str = "dynamic", inplace: bool = False) -> nn.Module:
    """Int8 post-training quantization of every ``nn.Linear`` with torchao's ``quantize_``.

    ``mode="dynamic"``: ``Int8DynamicActivationInt8WeightConfig`` (int8 weights per row; each
    activation is quantized on the fly and the matmul runs in int8). ``mode="weight_only"``:
    ``Int8WeightOnlyConfig`` (int8 weights, float matmul: 4× smaller, speed depends on memory
    bandwidth). Returns a quantized copy unless ``inplace``.

    >>> q = quantize_torchao(nn.Sequential(nn.Linear(16, 16)), "weight_only")
    >>> type(q[0].weight).__name__
    'Int8Tensor'
    """
    _check_cpu_model(model)
    if mode not in ("dynamic", "weight_only"):
        raise ValueError(f"mode must be 'dynamic' or 'weight_only', got {mode!r}")
    with _quiet():
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_

        target = model if inplace else copy.deepcopy(model)
        config = Int8DynamicActivationInt8WeightConfig() if mode == "dynamic" else Int8WeightOnlyConfig()
        quantize_(target.eval(), config)
    return target


def quantize_legacy(model: nn.Module, inplace: bool = False, engine: str | None = None) -> nn.Module:
    """Dynamic int8 quantization of every ``nn.Linear`` with the deprecated ``torch.ao.quantization.quantize_dynamic``.

    Weights become int8 per tensor; activations are quantized per batch; the matmuls run in
    fbgemm/oneDNN int8 kernels (CPU only). ``engine`` sets ``torch.backends.quantized.engine``.

    >>> q = quantize_legacy(nn.Sequential(nn.Linear(16, 16)))
    >>> type(q[0]).__name__
    'Linear'
    >>> type(q[0]).__module__.endswith("dynamic.modules.linear")
    True
    """
    _check_cpu_model(model)
    if engine is not None:
        if engine not in torch.backends.quantized.supported_engines:
            raise ValueError(f"engine {engine!r} not supported here; choose from {torch.backends.quantized.supported_engines}")
        torch.backends.quantized.engine = engine
    with _quiet():
        return torch.ao.quantization.quantize_dynamic(model.eval(), {nn.Linear}, dtype=torch.qint8, inplace=inplace)


def cpu_int8_support() -> dict[str, Any]:
    """What this CPU offers int8 kernels: its SIMD level, AVX512-VNNI and AMX (torchao's fast int8 paths need them).

    >>> sorted(cpu_int8_support())
    ['amx', 'capability', 'quantized_engine', 'vnni']
    """
    info: dict[str, Any] = {"capability": torch.backends.cpu.get_cpu_capability(),
                            "quantized_engine": torch.backends.quantized.engine}
    with _quiet():
        try:
            from torchao.utils import _cpu_is_amx_tile_supported, _cpu_is_vnni_supported

            info["vnni"], info["amx"] = bool(_cpu_is_vnni_supported()), bool(_cpu_is_amx_tile_supported())
        except Exception:  # noqa: BLE001 - best effort on exotic builds
            info["vnni"], info["amx"] = False, False
    return info

