"""4-bit NormalFloat (NF4) weights + LoRA from scratch: the QLoRA idea (Dettmers et al., 2023).

Fine-tuning with LoRA trains a few small matrices, but the frozen base weights still sit in memory
in float. QLoRA stores that frozen base in 4 bits:

- the 16 NF4 levels (:data:`NF4_LEVELS`) are quantiles of a standard normal, rescaled to [-1, 1], so a
  normally distributed weight uses every level equally often (:func:`nf4_levels` rebuilds them);
- blockwise absmax quantization (:func:`quantize_nf4`): each block of ``block_size`` (64) consecutive
  weights is divided by its largest magnitude (its *scale*) and each value becomes the index (0..15)
  of the nearest level; two 4-bit codes are packed into one byte;
- double quantization (``double_quant=True``) stores the per-block scales themselves in int8
  (minus their mean, one float factor per ``scale_block_size`` scales): 4 bytes per 64 weights
  (0.5 bit/weight) become about 1 byte per 64 weights (0.13 bit/weight);
- :func:`dequantize_nf4` rebuilds float weights: ``level[code] * scale``;
- :class:`NF4Linear`: a frozen NF4 weight, dequantized on the fly in ``forward`` (and again in
  ``backward`` rather than saved, so the float weight never stays alive) plus a trainable LoRA
  update ``(alpha / r) * B A x`` with ``B`` zero-initialized (the layer starts equal to its base);
- :func:`quantize_linears` swaps a Llama's linear layers for :class:`NF4Linear` and freezes the rest;
  :func:`lora_linears` does the same with a float base (:class:`LoRALinear`), the baseline to compare;
- :func:`weight_bytes` and :func:`step_peak_bytes` measure tensor memory (the latter through
  :class:`tutorlib.measure.LiveTensorMemory`, which works on a CPU).

The codes and dequantized values equal ``torchao``'s ``to_nf4`` (tests/test_llm_nf4.py). On a CPU, 4-bit is
*slower* than float: every forward (and backward) pays for a dequantization, and there is no fused 4-bit kernel.

>>> import torch
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> w = torch.randn(8, 64)
>>> q = quantize_nf4(w)
>>> q.codes.dtype, q.codes.numel(), q.nbytes, w.numel() * 4
(torch.uint8, 256, 288, 2048)
>>> bool((dequantize_nf4(q) - w).abs().max() < 0.2 * w.abs().max())
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["NF4_LEVELS", "LLAMA_LINEARS", "nf4_levels", "NF4Weight", "quantize_nf4", "dequantize_nf4",
           "pack_codes", "unpack_codes", "LoRALinear", "NF4Linear", "quantize_linears", "lora_linears",
           "lora_parameters", "weight_bytes", "step_peak_bytes"]

#: The 16 NF4 levels of the QLoRA paper (Appendix E; bitsandbytes' table; torchao rounds them to 4 decimals).
NF4_LEVELS: tuple[float, ...] = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141925812,
    0.24611230507087708, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0,
)

#: The linear layers of a ``transformers`` Llama block (attention and SwiGLU MLP).
LLAMA_LINEARS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def nf4_levels(offset: float = 0.9677083) -> torch.Tensor:
    """Rebuild the 16 NF4 levels from normal quantiles (float64): 8 positive, an exact zero, 7 negative.

    The positive levels are the normal quantiles at 8 evenly spaced probabilities from ``offset``
    down to 0.5 (0.5 excluded), the negative ones likewise with 7; all are divided by the largest,
    so the levels span [-1, 1] and 0 is exact (padding and zero weights stay zero). ``offset``
    = 1 - (1/30 + 1/32) / 2 keeps the outermost quantile finite.

    >>> levels = nf4_levels()
    >>> levels.shape, float(levels[0]), float(levels[7]), float(levels[-1])
    (torch.Size([16]), -1.0, 0.0, 1.0)
    >>> bool(torch.allclose(levels, torch.tensor(NF4_LEVELS, dtype=torch.float64), atol=1e-6))
    True
    """
    if not 0.5 < offset < 1.0:
        raise ValueError(f"offset must lie in (0.5, 1), got {offset}: it is the probability of the largest level")
    ndtri = torch.special.ndtri
    positive = ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])
    negative = -ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])
    levels = torch.cat([negative, torch.zeros(1, dtype=torch.float64), positive]).sort().values
    return levels / levels.max()


def pack_codes(codes: torch.Tensor) -> torch.Tensor:
    """Pack 4-bit codes (0..15, an even number of them) two per byte: ``[a, b, c, d] -> [a<<4 | b, c<<4 | d]``.

    >>> pack_codes(torch.tensor([1, 2, 15, 0]))
    tensor([ 18, 240], dtype=torch.uint8)
    """
    flat = codes.reshape(-1)
    if flat.numel() % 2:
        raise ValueError(f"need an even number of codes to pack two per byte, got {flat.numel()}")
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) > 15):
        raise ValueError("codes must lie in 0..15 to fit in 4 bits")
    flat = flat.to(torch.uint8)
    return (flat[0::2] << 4) | flat[1::2]


def unpack_codes(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_codes`: one byte gives two codes (high 4 bits first), as ``int64``.

    >>> unpack_codes(torch.tensor([18, 240], dtype=torch.uint8)).tolist()
    [1, 2, 15, 0]
    """
    if packed.dtype != torch.uint8:
        raise ValueError(f"packed codes must be uint8, got {packed.dtype}")
    return torch.stack([packed >> 4, packed & 0x0F], dim=-1).reshape(-1).long()


@dataclass
class NF4Weight:
    """A weight in NF4: packed codes, per-block scales (float, or int8 when double-quantized), the levels.

    With double quantization, ``scales`` is ``None`` and a block's scale is
    ``scale_codes / scale_factor[block // scale_block_size] + scale_mean``.
    """

    codes: torch.Tensor                    # uint8, numel / 2 (two codes per byte)
    shape: tuple[int, ...]
    block_size: int
    levels: torch.Tensor                   # the 16 levels, float32
    scales: torch.Tensor | None = None     # float32, one per block (no double quantization)
    scale_codes: torch.Tensor | None = None    # int8, one per block (double quantization)
    scale_factor: torch.Tensor | None = None   # float32, one per scale_block_size blocks
    scale_mean: torch.Tensor | None = None     # float32 scalar
    scale_block_size: int = 256

    @property
    def numel(self) -> int:
        """Number of weights stored."""
        return math.prod(self.shape)

    @property
    def double_quant(self) -> bool:
        """Whether the scales are themselves quantized (int8)."""
        return self.scales is None

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tensors that store the weight (what costs memory; the 16 levels are left out, shared)."""
        names = ("scale_codes", "scale_factor", "scale_mean") if self.double_quant else ("scales",)
        return {"codes": self.codes, **{n: getattr(self, n) for n in names}}

    @property
    def nbytes(self) -> int:
        """Bytes of the stored tensors: about ``numel / 2 + 4 * numel / block_size`` (less with double quantization)."""
        return sum(t.numel() * t.element_size() for t in self.tensors().values())

    def block_scales(self) -> torch.Tensor:
        """The float scale of every block (dequantizing the int8 scales when double-quantized)."""
        if not self.double_quant:
            return self.scales
        groups = self.scale_codes.view(-1, self.scale_block_size)
        return (groups / self.scale_factor.unsqueeze(-1)).reshape(-1) + self.scale_mean


def _check_blocks(numel: int, block_size: int, shape: tuple[int, ...]) -> None:
    if block_size < 2 or block_size % 2:
        raise ValueError(f"block_size must be an even number >= 2 (two codes per byte), got {block_size}")
    if numel == 0 or numel % block_size:
        raise ValueError(f"the weight of shape {shape} has {numel} values, not a multiple of block_size={block_size}: "
                         f"pick a block_size that divides {numel} (e.g. {math.gcd(numel, 64) or 1}) "
                         "or leave this layer in float")


def _nearest_level(x: torch.Tensor, levels: torch.Tensor, chunk: int = 1 << 18) -> torch.Tensor:
    """Index of the nearest level for each value of ``x`` (1-D), computed in chunks to bound memory."""
    out = torch.empty(x.numel(), dtype=torch.uint8, device=x.device)
    for start in range(0, x.numel(), chunk):
        part = x[start:start + chunk]
        out[start:start + chunk] = (part.unsqueeze(-1) - levels).abs().argmin(dim=-1).to(torch.uint8)
    return out


@torch.no_grad()
def quantize_nf4(weight: torch.Tensor, block_size: int = 64, double_quant: bool = False,
                 scale_block_size: int = 256, levels: torch.Tensor | Iterable[float] | None = None) -> NF4Weight:
    """Blockwise absmax NF4 quantization of ``weight`` (any shape; blocks run over the flattened values).

    Each block of ``block_size`` values is divided by its absolute maximum (its scale); each scaled value
    in [-1, 1] becomes the index of the nearest of the 16 ``levels`` (default :data:`NF4_LEVELS`);
    codes are packed two per byte. ``double_quant=True`` quantizes the scales to int8 as torchao does:
    subtract their mean, then absmax-quantize each group of ``scale_block_size`` scales.

    >>> q = quantize_nf4(torch.tensor([[0.0, 1.0, -2.0, 0.5]]), block_size=4)
    >>> unpack_codes(q.codes).tolist(), q.scales.tolist()   # 1/2 -> 0.4407 (code 12), 0.5/2 -> 0.2461 (code 10)
    ([7, 12, 0, 10], [2.0])
    >>> dequantize_nf4(q)
    tensor([[ 0.0000,  0.8814, -2.0000,  0.4922]])
    """
    shape = tuple(weight.shape)
    _check_blocks(weight.numel(), block_size, shape)
    x = weight.detach().reshape(-1).float()
    levels = torch.tensor(NF4_LEVELS) if levels is None else torch.as_tensor(levels)
    levels = levels.to(device=x.device, dtype=torch.float32)
    if levels.shape != (16,):
        raise ValueError(f"expected 16 levels (4 bits), got shape {tuple(levels.shape)}")
    blocks = x.view(-1, block_size)
    absmax = blocks.abs().amax(dim=1)
    safe = torch.where(absmax > 0, absmax, torch.ones_like(absmax))  # an all-zero block: codes of 0.0
    codes = pack_codes(_nearest_level((blocks / safe.unsqueeze(-1)).reshape(-1), levels))
    if not double_quant:
        return NF4Weight(codes=codes, shape=shape, block_size=block_size, levels=levels, scales=absmax)
    n_blocks = absmax.numel()
    if n_blocks % scale_block_size:
        raise ValueError(f"double quantization groups the {n_blocks} block scales by scale_block_size={scale_block_size}, "
                         f"which does not divide {n_blocks}: pick one that does (e.g. {math.gcd(n_blocks, 256)}) "
                         "or pass double_quant=False")
    mean = absmax.mean()
    centred = (absmax - mean).view(-1, scale_block_size)
    group_max = centred.abs().amax(dim=1)
    factor = 256 / (2 * torch.where(group_max > 0, group_max, torch.ones_like(group_max)))
    scale_codes = (centred * factor.unsqueeze(-1)).round().clamp(-128, 127).to(torch.int8).reshape(-1)
    return NF4Weight(codes=codes, shape=shape, block_size=block_size, levels=levels, scale_codes=scale_codes,
                     scale_factor=factor.contiguous(), scale_mean=mean, scale_block_size=scale_block_size)


def dequantize_nf4(q: NF4Weight, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Float weights back from NF4: ``levels[code] * scale`` of each value's block, in ``dtype``.

    >>> w = torch.linspace(-1, 1, 128).view(2, 64)
    >>> bool((dequantize_nf4(quantize_nf4(w)) - w).abs().max() < 0.15)
    True
    """
    values = q.levels[unpack_codes(q.codes)].view(-1, q.block_size)
    return (values * q.block_scales().unsqueeze(-1)).view(q.shape).to(dtype)


class _NF4Matmul(torch.autograd.Function):
    """``x @ W.T`` with ``W`` dequantized in forward and again in backward, so no float copy is saved."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, q: NF4Weight) -> torch.Tensor:  # noqa: D102
        ctx.q = q
        return x @ dequantize_nf4(q, x.dtype).T

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        return grad_out @ dequantize_nf4(ctx.q, grad_out.dtype), None


class LoRALinear(nn.Module):
    """A frozen float linear layer plus a trainable LoRA update: ``W x + b + (alpha / r) * B (A x)``.

    ``A`` (r × in) starts as in ``peft`` (Kaiming-uniform), ``B`` (out × r) at zero, so the layer starts
    equal to its base. This is the float-base baseline of :class:`NF4Linear`.

    >>> layer = LoRALinear(nn.Linear(64, 32, bias=False), r=4, alpha=8)
    >>> x = torch.randn(3, 64)
    >>> bool(torch.equal(layer(x), x @ layer.weight.T)), layer.scaling
    (True, 2.0)
    """

    def __init__(self, base: nn.Linear, r: int = 16, alpha: float = 32) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"expected an nn.Linear to wrap, got {type(base).__name__}")
        if r < 1:
            raise ValueError(f"the LoRA rank r must be >= 1, got {r}")
        self.in_features, self.out_features, self.r, self.alpha = base.in_features, base.out_features, r, alpha
        self.scaling = alpha / r
        self._set_base(base)
        kw = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(r, self.in_features, **kw))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, r, **kw))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        bias = None if base.bias is None else base.bias.detach()
        self.register_buffer("bias", bias)

    def _set_base(self, base: nn.Linear) -> None:
        self.register_buffer("weight", base.weight.detach())        # shares the float storage: no copy

    def base_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen layer alone: ``x @ W.T`` (no bias)."""
        return F.linear(x, self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = self.base_forward(x) + self.scaling * ((x @ self.lora_A.T) @ self.lora_B.T)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:  # noqa: D102
        return f"in_features={self.in_features}, out_features={self.out_features}, r={self.r}, alpha={self.alpha}"


class NF4Linear(LoRALinear):
    """A frozen NF4 linear layer (dequantized on the fly) plus a trainable LoRA update: the QLoRA layer.

    The packed codes and scales are buffers (they follow ``.to(device)`` and ``state_dict``, never the
    optimizer). The base product goes through a custom autograd function that dequantizes the weight
    again in backward instead of saving the float copy, so training never holds all float weights.

    >>> base = nn.Linear(64, 32, bias=False)
    >>> layer = NF4Linear(base, r=4, alpha=8)
    >>> x = torch.randn(3, 64)
    >>> bool(torch.allclose(layer(x), x @ dequantize_nf4(layer.nf4_weight()).T, atol=1e-6))
    True
    >>> [n for n, p in layer.named_parameters()]
    ['lora_A', 'lora_B']
    """

    def __init__(self, base: nn.Linear, r: int = 16, alpha: float = 32, block_size: int = 64,
                 double_quant: bool = False, scale_block_size: int = 256) -> None:
        self._quant = dict(block_size=block_size, double_quant=double_quant, scale_block_size=scale_block_size)
        super().__init__(base, r=r, alpha=alpha)

    def _set_base(self, base: nn.Linear) -> None:
        q = quantize_nf4(base.weight, **self._quant)
        self.block_size, self.scale_block_size, self.shape = q.block_size, q.scale_block_size, q.shape
        for name, tensor in q.tensors().items():
            self.register_buffer(name, tensor)
        self.register_buffer("levels", q.levels, persistent=False)

    def nf4_weight(self) -> NF4Weight:
        """The frozen weight as an :class:`NF4Weight` (views of this layer's buffers)."""
        names = ("scale_codes", "scale_factor", "scale_mean") if self._quant["double_quant"] else ("scales",)
        return NF4Weight(codes=self.codes, shape=self.shape, block_size=self.block_size, levels=self.levels,
                         scale_block_size=self.scale_block_size, **{n: getattr(self, n) for n in names})

    def base_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ dequantize(W).T``, dequantizing again in backward rather than saving the float weight."""
        return _NF4Matmul.apply(x, self.nf4_weight())


def _swap_linears(model: nn.Module, target_modules: Iterable[str], make: Callable[[nn.Linear], nn.Module]) -> nn.Module:
    targets = set([target_modules] if isinstance(target_modules, str) else target_modules)
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError("this model already has LoRA layers (quantize_linears or lora_linears ran on it): "
                         "start again from the original model")
    found = [(name, parent, child_name, child) for name, parent in model.named_modules()
             for child_name, child in parent.named_children() if isinstance(child, nn.Linear) and child_name in targets]
    if not found:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ValueError(f"no nn.Linear named any of {sorted(targets)} in the model: its linear layers are named "
                         f"{names}; pass some of these as target_modules")
    model.requires_grad_(False)
    for _, parent, child_name, child in found:
        setattr(parent, child_name, make(child))
    return model


def quantize_linears(model: nn.Module, target_modules: Iterable[str] = LLAMA_LINEARS, r: int = 16, alpha: float = 32,
                     block_size: int = 64, double_quant: bool = False, scale_block_size: int = 256) -> nn.Module:
    """QLoRA: replace the ``nn.Linear`` layers named in ``target_modules`` by :class:`NF4Linear`, freeze the rest.

    Modifies ``model`` in place and returns it; afterwards only the LoRA matrices require gradients
    (embeddings, norms and the LM head stay frozen in float).

    >>> import transformers
    >>> cfg = transformers.LlamaConfig(vocab_size=50, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
    ...                                num_attention_heads=4, num_key_value_heads=2)
    >>> model = quantize_linears(transformers.LlamaForCausalLM(cfg), r=4, alpha=8)
    >>> type(model.model.layers[0].mlp.up_proj).__name__, len(lora_parameters(model))
    ('NF4Linear', 14)
    """
    return _swap_linears(model, target_modules, lambda lin: NF4Linear(
        lin, r=r, alpha=alpha, block_size=block_size, double_quant=double_quant, scale_block_size=scale_block_size))


def lora_linears(model: nn.Module, target_modules: Iterable[str] = LLAMA_LINEARS, r: int = 16,
                 alpha: float = 32) -> nn.Module:
    """Float-base LoRA: replace the named ``nn.Linear`` layers by :class:`LoRALinear`, freeze the rest (in place).

    The same LoRA code as :func:`quantize_linears` on a float base: the baseline QLoRA is compared with.

    >>> model = lora_linears(nn.Sequential(nn.Linear(8, 8)), target_modules=["0"], r=2, alpha=4)
    >>> sorted(n for n, p in model.named_parameters() if p.requires_grad)
    ['0.lora_A', '0.lora_B']
    """
    return _swap_linears(model, target_modules, lambda lin: LoRALinear(lin, r=r, alpha=alpha))


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable LoRA matrices of a model prepared by :func:`quantize_linears` or :func:`lora_linears`.

    >>> len(lora_parameters(lora_linears(nn.Sequential(nn.Linear(8, 8)), target_modules=["0"])))
    2
    """
    return [p for m in model.modules() if isinstance(m, LoRALinear) for p in (m.lora_A, m.lora_B)]


def _storages(t: torch.Tensor) -> list[tuple[tuple[str, int], int]]:
    """``((device, data pointer), bytes)`` of the storages behind ``t``; a tensor subclass such as torchao's
    ``NF4Tensor`` (``__tensor_flatten__``) is counted through its inner tensors."""
    if type(t) not in (torch.Tensor, nn.Parameter) and hasattr(t, "__tensor_flatten__"):
        names, _ = t.__tensor_flatten__()
        return [s for name in names for s in _storages(getattr(t, name))]
    if t.device.type == "meta":
        return []
    storage = t.untyped_storage()
    return [((str(t.device), storage.data_ptr()), storage.nbytes())]


def weight_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes of a model's live weight tensors (parameters and buffers, each storage counted once).

    Returns ``{"frozen": ..., "trainable": ..., "total": ...}``; the NF4 codes and scales are buffers,
    so they count as frozen.

    >>> weight_bytes(nn.Linear(4, 2))
    {'frozen': 0, 'trainable': 40, 'total': 40}
    """
    seen: set[tuple[str, int]] = set()
    out = {"frozen": 0, "trainable": 0}
    tensors = [(p, p.requires_grad) for p in model.parameters()] + [(b, False) for b in model.buffers()]
    for t, trainable in tensors:
        for key, size in _storages(t):
            if key not in seen:
                seen.add(key)
                out["trainable" if trainable else "frozen"] += size
    out["total"] = out["frozen"] + out["trainable"]
    return out


def step_peak_bytes(step: Callable[[], Any], model: nn.Module | None = None) -> int:
    """Peak bytes of the tensors created while ``step()`` runs (activations, gradients, optimizer state,
    dequantized temporaries), measured with :class:`tutorlib.measure.LiveTensorMemory`.

    Weights that existed before are not counted (add :func:`weight_bytes`); pass the ``model`` so that
    views of its weights taken inside the step (``W.T``) are not counted as new tensors either.

    >>> layer = NF4Linear(nn.Linear(64, 64, bias=False), r=4)
    >>> step_peak_bytes(lambda: layer(torch.randn(2, 64)).sum().backward(), model=layer) > 0
    True
    """
    from tutorlib.measure import LiveTensorMemory

    known = set()
    if model is not None:
        known = {key for t in list(model.parameters()) + list(model.buffers()) for key, _ in _storages(t)}

    class _NewTensorsOnly(LiveTensorMemory):
        def _track(self, t: torch.Tensor) -> None:
            try:
                if (str(t.device), t.untyped_storage().data_ptr()) in known:
                    return
            except (RuntimeError, NotImplementedError):
                pass
            super()._track(t)

    with _NewTensorsOnly() as mem:
        step()
    return mem.peak_bytes
