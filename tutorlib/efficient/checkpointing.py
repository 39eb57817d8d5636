"""Activation checkpointing: keep only each block's input during the forward pass, recompute the rest in backward.

Training stores every intermediate activation for the backward pass, so activation memory grows
with batch size × sequence length × depth. ``torch.utils.checkpoint.checkpoint(block, x)`` stores
only ``x`` and runs ``block`` a second time during backward: about one extra forward pass of
compute (≈ +33 % step time) for activation memory that no longer grows with the work inside blocks.

:func:`saved_activation_bytes` measures exactly what autograd keeps for backward (on any device),
which is how the lesson shows the saving on a CPU where allocator statistics are not available.

>>> from tutorlib.models import TinyGPT, GPTConfig
>>> m = TinyGPT(GPTConfig(block_size=32, n_layer=2, d_model=32, n_head=2))
>>> x = torch.randint(0, 128, (2, 33))
>>> before = saved_activation_bytes(lambda: m.loss(x), m)
>>> after = saved_activation_bytes(lambda: enable_activation_checkpointing(m).loss(x), m)
>>> after < before
True
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = [
    "CheckpointWrapper",
    "checkpointed_sequential",
    "enable_activation_checkpointing",
    "disable_activation_checkpointing",
    "saved_activation_bytes",
]


class CheckpointWrapper(nn.Module):
    """Run ``module`` under ``torch.utils.checkpoint`` while training with gradients on (plain call otherwise).

    >>> w = CheckpointWrapper(nn.Linear(4, 4)); w(torch.randn(2, 4, requires_grad=True)).shape
    torch.Size([2, 4])
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.training and torch.is_grad_enabled():
            return checkpoint(self.module, *args, use_reentrant=False, **kwargs)
        return self.module(*args, **kwargs)


def checkpointed_sequential(blocks: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """Apply ``blocks`` in order, each under ``torch.utils.checkpoint`` (the teaching version of the wrapper).

    Same output and gradients as ``for b in blocks: x = b(x)``, less memory kept for backward.

    >>> blocks = [nn.Sequential(nn.Linear(4, 4), nn.GELU()) for _ in range(3)]
    >>> x = torch.randn(2, 4, requires_grad=True)
    >>> torch.allclose(checkpointed_sequential(blocks, x), blocks[2](blocks[1](blocks[0](x))))
    True
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a tensor, got {type(x).__name__}")
    for block in blocks:
        x = checkpoint(block, x, use_reentrant=False)
    return x


def _block_list(model: nn.Module, attr: str | None) -> nn.ModuleList | None:
    if attr is not None:
        obj: Any = model
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise ValueError(f"model has no attribute path {attr!r} (failed at {part!r})")
            obj = getattr(obj, part)
        if not isinstance(obj, nn.ModuleList):
            raise TypeError(f"{attr!r} is a {type(obj).__name__}, expected an nn.ModuleList of blocks")
        return obj
    blocks = getattr(model, "blocks", None)
    return blocks if isinstance(blocks, nn.ModuleList) else None


def _hf_model(model: nn.Module) -> nn.Module | None:
    for candidate in (model, getattr(model, "encoder", None)):
        if candidate is not None and (hasattr(candidate, "activation_checkpointing_enable")
                                      or hasattr(candidate, "gradient_checkpointing_enable")):
            return candidate
    return None


def _hf_toggle(model: nn.Module, on: bool) -> None:
    # transformers 5 renamed gradient_checkpointing_* to activation_checkpointing_* (the old names warn).
    if hasattr(model, "activation_checkpointing_enable"):
        if on:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.activation_checkpointing_disable()
    elif on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()


def enable_activation_checkpointing(model: nn.Module, blocks: str | None = None) -> nn.Module:
    """Turn activation checkpointing on, in place, and return ``model``.

    Hugging Face models (and wrappers with a Hugging Face ``.encoder`` such as ``MiniLMClassifier``)
    use their own switch (``activation_checkpointing_enable``, formerly ``gradient_checkpointing_enable``; non-reentrant); models with an ``nn.ModuleList`` of blocks
    (``TinyGPT.blocks``, or the attribute path ``blocks=``) get every block wrapped in
    :class:`CheckpointWrapper`. Calling it twice is harmless.

    >>> from tutorlib.models import TinyGPT, GPTConfig
    >>> m = enable_activation_checkpointing(TinyGPT(GPTConfig(n_layer=1, d_model=16, n_head=2)))
    >>> type(m.blocks[0]).__name__
    'CheckpointWrapper'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    hf = _hf_model(model) if blocks is None else None
    if hf is not None:
        _hf_toggle(hf, True)
        return model
    block_list = _block_list(model, blocks)
    if block_list is None:
        raise ValueError(
            f"do not know where the blocks of {type(model).__name__} are: pass blocks='path.to.ModuleList' "
            "(e.g. blocks='blocks' or blocks='encoder.layer')"
        )
    for i, block in enumerate(block_list):
        if not isinstance(block, CheckpointWrapper):
            block_list[i] = CheckpointWrapper(block)
    return model


def disable_activation_checkpointing(model: nn.Module, blocks: str | None = None) -> nn.Module:
    """Undo :func:`enable_activation_checkpointing` (in place) and return ``model``.

    >>> from tutorlib.models import TinyGPT, GPTConfig
    >>> m = disable_activation_checkpointing(enable_activation_checkpointing(TinyGPT(GPTConfig(n_layer=1, d_model=16, n_head=2))))
    >>> type(m.blocks[0]).__name__
    '_Block'
    """
    hf = _hf_model(model) if blocks is None else None
    if hf is not None:
        _hf_toggle(hf, False)
        return model
    block_list = _block_list(model, blocks)
    if block_list is None:
        raise ValueError(f"do not know where the blocks of {type(model).__name__} are: pass blocks='path.to.ModuleList'")
    for i, block in enumerate(block_list):
        if isinstance(block, CheckpointWrapper):
            block_list[i] = block.module
    return model


def saved_activation_bytes(fn: Callable[[], Any], params: nn.Module | Iterable[torch.Tensor] = ()) -> int:
    """Bytes of the tensors autograd keeps for backward while ``fn()`` runs (each storage once, parameters excluded).

    This is exactly the activation memory a training step holds between forward and backward —
    the quantity activation checkpointing reduces — and it works on every device.

    >>> lin = nn.Linear(100, 100)
    >>> saved_activation_bytes(lambda: lin(torch.randn(8, 100)).relu().sum(), lin)   # input + ReLU output
    6400
    """
    tensors = params.parameters() if isinstance(params, nn.Module) else params
    skip = {t.untyped_storage().data_ptr() for t in tensors}
    seen: set[int] = set()
    total = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # e.g. tensor subclasses without storage
            total[0] += t.numel() * t.element_size()
            return t
        ptr = storage.data_ptr()
        if ptr not in skip and ptr not in seen:
            seen.add(ptr)
            total[0] += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return total[0]
