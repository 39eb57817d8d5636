"""LoRA from scratch: a frozen ``nn.Linear`` plus a trainable low-rank update ``(alpha / r) · B A``.

Hu et al. (2021), "LoRA: Low-Rank Adaptation of Large Language Models". The update starts at zero
(``B`` is zero-initialised), so an injected model first computes exactly what the pretrained one
did. :meth:`LoRALinear.merge` folds the update into the base weight, after which the layer costs
the same as the plain ``nn.Linear`` (no extra latency); :meth:`LoRALinear.unmerge` takes it out again.

Parameter names and initialisation follow the ``peft`` library (``lora_A`` kaiming-uniform,
``lora_B`` zeros, dropout on the input of ``A``), so weights can be copied between the two.

>>> import torch
>>> from torch import nn
>>> layer = LoRALinear(nn.Linear(16, 8), r=4, alpha=8)
>>> x = torch.randn(2, 16)
>>> torch.allclose(layer(x), layer.base(x))          # B = 0: same output as the base layer
True
>>> sum(p.numel() for p in layer.parameters() if p.requires_grad)   # r·(in + out)
96
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
from torch import nn

__all__ = [
    "LoRALinear",
    "inject_lora",
    "merge_lora",
    "unmerge_lora",
    "unload_lora",
    "lora_layers",
    "lora_state_dict",
    "load_lora_state_dict",
    "lora_parameter_count",
    "find_linear_names",
]


class LoRALinear(nn.Module):
    """``y = base(x) + (alpha / r) · B(A(dropout(x)))`` with ``base`` frozen and ``A`` (r×in), ``B`` (out×r) trained.

    Args:
        base: the pretrained ``nn.Linear`` to adapt (its parameters are frozen).
        r: rank of the update (``r ≥ 1``; small, e.g. 4–16).
        alpha: scaling numerator; the update is multiplied by ``alpha / r``.
        dropout: dropout probability on the input of the low-rank branch.

    >>> layer = LoRALinear(nn.Linear(4, 3), r=2, alpha=4)
    >>> layer.scaling, tuple(layer.lora_A.weight.shape), tuple(layer.lora_B.weight.shape)
    (2.0, (2, 4), (3, 2))
    """

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16.0, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}: choose Linear target modules")
        if not isinstance(r, int) or isinstance(r, bool) or r < 1:
            raise ValueError(f"rank r must be a positive int, got {r!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.r = r
        self.alpha = float(alpha)
        self.scaling = self.alpha / r
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        w = base.weight
        self.lora_A = nn.Linear(base.in_features, r, bias=False, device=w.device, dtype=w.dtype)
        self.lora_B = nn.Linear(r, base.out_features, bias=False, device=w.device, dtype=w.dtype)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.merged = False

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> torch.Tensor:
        """The update ``(alpha / r) · B @ A`` as a full (out, in) matrix.

        >>> LoRALinear(nn.Linear(4, 3), r=2).delta_weight().abs().sum().item()   # B starts at zero
        0.0
        """
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"expected inputs (..., {self.in_features}), got {tuple(x.shape)}")
        out = self.base(x)
        if self.merged:
            return out
        return out + self.lora_B(self.lora_A(self.dropout(x))) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """Add the update into ``base.weight`` so the forward pass is one matmul (idempotent).

        >>> layer = LoRALinear(nn.Linear(4, 3), r=2); layer.merge(); layer.merged
        True
        """
        if not self.merged:
            self.base.weight += self.delta_weight().to(self.base.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update from ``base.weight`` again (idempotent); training can continue afterwards.

        >>> layer = LoRALinear(nn.Linear(4, 3), r=2); layer.merge(); layer.unmerge(); layer.merged
        False
        """
        if self.merged:
            self.base.weight -= self.delta_weight().to(self.base.weight.dtype)
            self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}, merged={self.merged}"


def _matches(name: str, targets: Sequence[str]) -> bool:
    # Like peft: a target matches the full module name or its last dotted parts ("query", "attention.self.query").
    return any(name == t or name.endswith("." + t) for t in targets)


def find_linear_names(model: nn.Module) -> list[str]:
    """The distinct short names (last path component) of every ``nn.Linear`` in ``model``: candidate targets.

    >>> find_linear_names(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    ['0']
    """
    return sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear) and n})


def inject_lora(model: nn.Module, target_modules: Sequence[str] = ("query", "value"), r: int = 8,
                alpha: float = 16.0, dropout: float = 0.0, trainable: Iterable[str] = ()) -> list[str]:
    """Replace every ``nn.Linear`` whose name ends with one of ``target_modules`` by a :class:`LoRALinear`, in place.

    All other parameters are frozen, except those of the modules named in ``trainable`` (e.g.
    ``("head",)`` for a new classifier head). Returns the names of the adapted layers.

    >>> from transformers import BertConfig, BertModel
    >>> from tutorlib.models import count_parameters
    >>> bert = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    ...                             intermediate_size=64))
    >>> names = inject_lora(bert, ["query", "value"], r=4, alpha=8)
    >>> len(names), count_parameters(bert).trainable     # 2 layers × 2 projections × r·(32 + 32)
    (4, 1024)
    """
    if isinstance(target_modules, str):
        target_modules = [target_modules]
    targets = list(target_modules)
    if not targets:
        raise ValueError("target_modules is empty: name at least one Linear layer, e.g. ['query', 'value']")
    found = [(n, m) for n, m in model.named_modules() if n and _matches(n, targets)]
    if any(isinstance(m, LoRALinear) for _, m in found) or any(
            isinstance(m, nn.Linear) and n.endswith(".base") for n, m in model.named_modules()):
        raise ValueError("the model already has LoRA layers: inject once (call unload_lora(model) first to start over)")
    not_linear = [n for n, m in found if not isinstance(m, nn.Linear)]
    if not_linear:
        raise TypeError(f"target module(s) {not_linear[:3]} are not nn.Linear; LoRALinear adapts Linear layers only. "
                        f"Linear layers here: {find_linear_names(model)}")
    if not found:
        raise ValueError(f"no module matches target_modules={targets}: choose among the Linear layer names "
                         f"{find_linear_names(model)}")
    for p in model.parameters():
        p.requires_grad_(False)
    for name, module in found:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(module, r=r, alpha=alpha, dropout=dropout))
    keep = list(trainable)
    for name in keep:
        try:
            sub = model.get_submodule(name)
        except AttributeError as exc:
            raise ValueError(f"trainable module {name!r} not found in the model") from exc
        for p in sub.parameters():
            p.requires_grad_(True)
    return [n for n, _ in found]


def lora_layers(model: nn.Module) -> list[tuple[str, LoRALinear]]:
    """All ``(name, LoRALinear)`` pairs in ``model``.

    >>> lora_layers(nn.Sequential(LoRALinear(nn.Linear(4, 4), r=2)))[0][0]
    '0'
    """
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]


def _require_lora(model: nn.Module) -> list[tuple[str, LoRALinear]]:
    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRALinear layers: call inject_lora(model, ...) first")
    return layers


def merge_lora(model: nn.Module) -> nn.Module:
    """Merge every LoRA update into its base weight (for fast inference); returns ``model``.

    >>> m = nn.Sequential(LoRALinear(nn.Linear(4, 4), r=2)); _ = merge_lora(m); m[0].merged
    True
    """
    for _, layer in _require_lora(model):
        layer.merge()
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Undo :func:`merge_lora` (to keep training or switch adapters); returns ``model``.

    >>> m = nn.Sequential(LoRALinear(nn.Linear(4, 4), r=2)); _ = unmerge_lora(merge_lora(m)); m[0].merged
    False
    """
    for _, layer in _require_lora(model):
        layer.unmerge()
    return model


def unload_lora(model: nn.Module, merge: bool = True) -> nn.Module:
    """Replace each :class:`LoRALinear` by its (merged, if ``merge``) plain ``nn.Linear``: the deployable model.

    >>> m = nn.Sequential(LoRALinear(nn.Linear(4, 4), r=2)); type(unload_lora(m)[0]).__name__
    'Linear'
    """
    for name, layer in _require_lora(model):
        if merge:
            layer.merge()
        else:
            layer.unmerge()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.base)
    return model


def lora_state_dict(model: nn.Module, extra: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """Only the LoRA weights (and those of the modules named in ``extra``): what an adapter file stores.

    >>> m = nn.Sequential(LoRALinear(nn.Linear(4, 4), r=2)); sorted(lora_state_dict(m))
    ['0.lora_A.weight', '0.lora_B.weight']
    """
    prefixes = tuple(f"{e}." for e in extra)
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if ".lora_A." in k or ".lora_B." in k or k.startswith(prefixes)}


def load_lora_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load an adapter saved with :func:`lora_state_dict` into a model with the same injected layers.

    >>> m = nn.Sequential(LoRALinear(nn.Linear(4, 4), r=2)); load_lora_state_dict(m, lora_state_dict(m))
    """
    merged = [n for n, layer in lora_layers(model) if layer.merged]
    if merged:
        raise ValueError(f"layers {merged[:3]} are merged: call unmerge_lora(model) before loading another adapter")
    own = model.state_dict()
    unknown = [k for k in state if k not in own]
    if unknown:
        raise ValueError(f"adapter keys {unknown[:3]} are not in the model: inject LoRA with the same "
                         "target_modules (and r) that the adapter was trained with")
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise ValueError(f"adapter tensor {k} has shape {tuple(v.shape)} but the model expects "
                             f"{tuple(own[k].shape)}: the rank r differs")
    model.load_state_dict(state, strict=False)


def lora_parameter_count(shapes: Iterable[tuple[int, int]], r: int) -> int:
    """Trainable values LoRA adds for Linear layers of the given ``(in_features, out_features)``: ``Σ r·(in + out)``.

    >>> lora_parameter_count([(384, 384)] * 12, r=8)    # MiniLM: 6 layers × query, value
    73728
    """
    if r < 1:
        raise ValueError(f"rank r must be at least 1, got {r}")
    return sum(r * (i + o) for i, o in shapes)
