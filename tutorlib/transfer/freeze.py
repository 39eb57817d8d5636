"""Freezing strategies for transfer learning: freeze everything, unfreeze the top ``k`` layers, layer-wise LR decay.

A pretrained encoder's lower layers hold general features (tokens, syntax), its upper layers the
more task-like ones. A *linear probe* trains only a head on frozen features; unfreezing the top
``k`` layers adapts the upper features too; full fine-tuning trains everything; layer-wise
learning-rate decay (LLRD, Howard & Ruder 2018; Clark et al. 2020) trains everything but gives
layer ``i`` the rate ``lr · decay^(L − i)``, so the bottom changes least.

Works with ``MiniLMClassifier`` (layers at ``.encoder.encoder.layer``), a Hugging Face ``BertModel``
(``.encoder.layer``), the multi-task model and ``TinyGPT`` (``.blocks``).

>>> from tutorlib.models import MiniLMClassifier
>>> m = unfreeze_top(MiniLMClassifier(2), k=2)
>>> count_trainable(m) < count_trainable(unfreeze(m))
True
"""

from __future__ import annotations

from typing import Any

from torch import nn

from tutorlib.models.params import count_parameters

__all__ = ["encoder_layers", "freeze", "unfreeze", "unfreeze_top", "count_trainable",
           "layer_depths", "layerwise_lr_groups"]

_LAYER_PATHS = ("encoder.encoder.layer", "encoder.layer", "blocks", "layers")


def _get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The stack of transformer layers of ``model`` (bottom first).

    >>> from tutorlib.models import MiniLMClassifier
    >>> len(encoder_layers(MiniLMClassifier(2)))
    6
    """
    for path in _LAYER_PATHS:
        layers = _get_path(model, path)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            return layers
    raise ValueError(
        f"cannot find the layer stack of {type(model).__name__}: expected an nn.ModuleList at one of "
        f"{', '.join(_LAYER_PATHS)}"
    )


def freeze(module: nn.Module, trainable: bool = False) -> nn.Module:
    """Set ``requires_grad`` of every parameter of ``module`` to ``trainable`` (default: freeze); returns ``module``.

    >>> lin = freeze(nn.Linear(2, 2)); lin.weight.requires_grad
    False
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(module).__name__}")
    for p in module.parameters():
        p.requires_grad_(trainable)
    return module


def unfreeze(module: nn.Module) -> nn.Module:
    """Make every parameter of ``module`` trainable (full fine-tuning); returns ``module``.

    >>> unfreeze(freeze(nn.Linear(2, 2))).bias.requires_grad
    True
    """
    return freeze(module, trainable=True)


def _head_modules(model: nn.Module) -> list[nn.Module]:
    found = [m for name in ("head", "heads", "lm_head", "classifier") if isinstance(m := getattr(model, name, None), nn.Module)]
    if not found:
        raise ValueError(f"{type(model).__name__} has no head: expected an attribute head, heads, lm_head or classifier")
    return found


def unfreeze_top(model: nn.Module, k: int, train_head: bool = True) -> nn.Module:
    """Freeze ``model``, then make the top ``k`` encoder layers (and the head) trainable; returns ``model``.

    ``k = 0`` is a linear probe (head only); ``k = L`` trains every layer but the embeddings.

    >>> from tutorlib.models import MiniLMClassifier
    >>> m = unfreeze_top(MiniLMClassifier(2), 1)
    >>> [any(p.requires_grad for p in layer.parameters()) for layer in encoder_layers(m)]
    [False, False, False, False, False, True]
    """
    layers = encoder_layers(model)
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if not 0 <= k <= len(layers):
        raise ValueError(f"k must be between 0 (head only) and {len(layers)} (every layer), got {k}")
    freeze(model)
    for layer in list(layers)[len(layers) - k:]:
        unfreeze(layer)
    if train_head:
        for head in _head_modules(model):
            unfreeze(head)
    return model


def count_trainable(model: nn.Module) -> int:
    """Number of trainable parameter values (``requires_grad``), each shared tensor once.

    The same as ``tutorlib.models.count_parameters(model).trainable``.

    >>> count_trainable(nn.Linear(3, 2))
    8
    """
    return count_parameters(model).trainable


def layer_depths(model: nn.Module) -> dict[str, int]:
    """Depth of every parameter: 0 = embeddings, ``i + 1`` = encoder layer ``i``, ``L + 1`` = above the stack (head, pooler, final norm).

    >>> from tutorlib.models import MiniLMClassifier
    >>> d = layer_depths(MiniLMClassifier(2)); d["head.weight"], d["encoder.embeddings.word_embeddings.weight"]
    (7, 0)
    """
    layers = encoder_layers(model)
    n = len(layers)
    in_layer: dict[int, int] = {}
    for i, layer in enumerate(layers):
        for p in layer.parameters():
            in_layer[id(p)] = i + 1
    embedding_params: set[int] = set()
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Embedding) or name.split(".")[-1] in ("embeddings", "tok_emb", "pos_emb"):
            embedding_params.update(id(p) for p in mod.parameters())
    depths: dict[str, int] = {}
    for name, p in model.named_parameters():
        if id(p) in in_layer:
            depths[name] = in_layer[id(p)]
        elif id(p) in embedding_params:
            depths[name] = 0
        else:
            depths[name] = n + 1
    return depths


def layerwise_lr_groups(model: nn.Module, lr: float, decay: float = 0.8, weight_decay: float = 0.0) -> list[dict[str, Any]]:
    """Optimizer parameter groups with layer-wise LR decay: depth ``d`` gets ``lr · decay^(L + 1 − d)``.

    The head (and anything above the layer stack) trains at ``lr``, the top layer at ``lr · decay``,
    …, the embeddings at ``lr · decay^(L + 1)``. Only trainable parameters are included; pass the
    result to ``torch.optim.AdamW``. Each group also carries ``"depth"``.

    >>> from tutorlib.models import MiniLMClassifier
    >>> groups = layerwise_lr_groups(MiniLMClassifier(2), lr=1e-4, decay=0.5)
    >>> [g["depth"] for g in groups][:3], groups[-1]["lr"], groups[0]["lr"] == 1e-4 * 0.5 ** 7
    ([0, 1, 2], 0.0001, True)
    """
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if not 0 < decay <= 1:
        raise ValueError(f"decay must be in (0, 1] (1 = no decay), got {decay}")
    depths = layer_depths(model)
    top = len(encoder_layers(model)) + 1
    by_depth: dict[int, list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            by_depth.setdefault(depths[name], []).append(p)
    if not by_depth:
        raise ValueError("the model has no trainable parameters: unfreeze something first")
    return [{"params": by_depth[d], "lr": lr * decay ** (top - d), "depth": d, "weight_decay": weight_decay}
            for d in sorted(by_depth)]
