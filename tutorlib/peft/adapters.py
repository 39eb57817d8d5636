"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2020), which the ``peft`` library does not provide.

An adapter is a small residual MLP ``h + up(act(down(h)))`` with a narrow middle (the bottleneck)
inserted after a transformer sub-layer's output projection; only the adapters (and the task head)
train. ``up`` starts at zero, so the adapted model first computes exactly what the pretrained one did.

Placements on a BERT-style encoder such as the course's MiniLM:

- ``"houlsby"``: after the attention output projection *and* after the feed-forward output
  projection of every layer (two adapters per layer); the layer norms train too, as in the paper.
- ``"pfeiffer"``: after the feed-forward output projection only (one adapter per layer, about half
  the parameters and less latency, usually similar accuracy).

>>> import torch
>>> a = BottleneckAdapter(32, bottleneck=4)
>>> h = torch.randn(2, 5, 32)
>>> torch.equal(a(h), h)                       # zero-initialised up-projection: the identity at first
True
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

import torch
from torch import nn

__all__ = ["BottleneckAdapter", "AdaptedLinear", "inject_adapters", "adapter_layers", "PLACEMENTS"]

#: Regular expressions (matched with ``re.search`` against module names) of the Linear layers to follow
#: with an adapter, per placement, for BERT-style encoders (``…layer.N.attention.output.dense`` / ``…layer.N.output.dense``).
PLACEMENTS: dict[str, tuple[str, ...]] = {
    "houlsby": (r"attention\.output\.dense$", r"layer\.\d+\.output\.dense$"),
    "pfeiffer": (r"layer\.\d+\.output\.dense$",),
}

_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}


class BottleneckAdapter(nn.Module):
    """``h + up(act(down(h)))`` with ``down: d → bottleneck`` and ``up: bottleneck → d`` (``up`` zero-initialised).

    Args:
        hidden: width ``d`` of the hidden states it adapts.
        bottleneck: width of the middle layer (``1 ≤ bottleneck``; e.g. 16–64 for d = 384).
        activation: ``"gelu"``, ``"relu"``, ``"tanh"`` or ``"silu"``.
        dropout: dropout on the bottleneck activations.

    >>> sum(p.numel() for p in BottleneckAdapter(384, 16).parameters())   # 2·384·16 + 16 + 384
    12688
    """

    def __init__(self, hidden: int, bottleneck: int = 16, activation: str = "gelu", dropout: float = 0.0) -> None:
        super().__init__()
        if hidden < 1 or bottleneck < 1:
            raise ValueError(f"hidden and bottleneck must be positive, got hidden={hidden}, bottleneck={bottleneck}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}: use one of {sorted(_ACTIVATIONS)}")
        self.down = nn.Linear(hidden, bottleneck)
        self.act = _ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.up = nn.Linear(bottleneck, hidden)
        nn.init.normal_(self.down.weight, std=0.02)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.shape[-1] != self.down.in_features:
            raise ValueError(f"expected hidden states (..., {self.down.in_features}), got {tuple(h.shape)}")
        return h + self.up(self.dropout(self.act(self.down(h))))


class AdaptedLinear(nn.Module):
    """A frozen ``nn.Linear`` followed by a :class:`BottleneckAdapter`: ``adapter(base(x))``.

    >>> layer = AdaptedLinear(nn.Linear(8, 8), BottleneckAdapter(8, 2))
    >>> x = torch.randn(3, 8); torch.equal(layer(x), layer.base(x))
    True
    """

    def __init__(self, base: nn.Linear, adapter: BottleneckAdapter) -> None:
        super().__init__()
        self.base = base
        self.adapter = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.base(x))


def inject_adapters(model: nn.Module, bottleneck: int = 16, placement: str = "houlsby",
                    patterns: Sequence[str] | None = None, activation: str = "gelu", dropout: float = 0.0,
                    train_layernorm: bool | None = None, trainable: Iterable[str] = ()) -> list[str]:
    """Insert a bottleneck adapter after every Linear layer the ``placement`` names, freeze the rest, in place.

    ``patterns`` (regular expressions searched in module names) overrides ``placement``'s defaults.
    ``train_layernorm`` defaults to True for Houlsby, False for Pfeiffer. Modules named in
    ``trainable`` (e.g. ``("head",)``) stay trainable. Returns the names of the adapted layers.

    >>> from transformers import BertConfig, BertModel
    >>> bert = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    ...                             intermediate_size=64))
    >>> inject_adapters(bert, bottleneck=4, placement="pfeiffer")
    ['encoder.layer.0.output.dense', 'encoder.layer.1.output.dense']
    """
    if placement not in PLACEMENTS and patterns is None:
        raise ValueError(f"unknown placement {placement!r}: use one of {sorted(PLACEMENTS)} or pass patterns=")
    pats = [re.compile(p) for p in (patterns if patterns is not None else PLACEMENTS[placement])]
    if any(isinstance(m, AdaptedLinear) for m in model.modules()):
        raise ValueError("the model already has adapters: inject once")
    found = [(n, m) for n, m in model.named_modules()
             if n and isinstance(m, nn.Linear) and any(p.search(n) for p in pats)]
    if not found:
        linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][:6]
        raise ValueError(f"no Linear layer matches {[p.pattern for p in pats]}: is this a BERT-style encoder? "
                         f"Linear layers here include {linear}; pass patterns= to choose others")
    for p in model.parameters():
        p.requires_grad_(False)
    for name, lin in found:
        adapter = BottleneckAdapter(lin.out_features, bottleneck, activation, dropout)
        adapter.to(device=lin.weight.device, dtype=lin.weight.dtype)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, AdaptedLinear(lin, adapter))
    if train_layernorm is None:
        train_layernorm = placement == "houlsby" and patterns is None
    if train_layernorm:
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                for p in m.parameters():
                    p.requires_grad_(True)
    for name in trainable:
        for p in model.get_submodule(name).parameters():
            p.requires_grad_(True)
    for m in model.modules():
        if isinstance(m, BottleneckAdapter):
            for p in m.parameters():
                p.requires_grad_(True)
    return [n for n, _ in found]


def adapter_layers(model: nn.Module) -> list[tuple[str, BottleneckAdapter]]:
    """All ``(name, BottleneckAdapter)`` pairs in ``model``.

    >>> adapter_layers(nn.Sequential(AdaptedLinear(nn.Linear(4, 4), BottleneckAdapter(4, 2))))[0][0]
    '0.adapter'
    """
    return [(n, m) for n, m in model.named_modules() if isinstance(m, BottleneckAdapter)]
