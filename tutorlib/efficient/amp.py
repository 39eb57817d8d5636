"""Mixed precision: an autocast + ``GradScaler`` training step, and what loss scaling does to real gradients.

Under ``torch.autocast`` matmuls run in bf16/fp16 while weights, the loss and the optimizer stay in
fp32. fp16 has a small range, so small gradients underflow to 0 in the backward pass; the
``torch.amp.GradScaler`` multiplies the loss by a large scale (65,536 to start) before backward,
divides the gradients by it before the optimizer step, skips steps whose gradients overflowed and
adapts the scale. bf16 has fp32's range and needs no scaler.

>>> import torch.nn.functional as F
>>> model = nn.Linear(4, 2); opt = torch.optim.SGD(model.parameters(), lr=0.1)
>>> scaler = torch.amp.GradScaler("cpu")
>>> loss = amp_train_step(model, torch.randn(8, 4), torch.randint(0, 2, (8,)), opt, scaler, torch.bfloat16)
>>> isinstance(loss, float)
True
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["amp_train_step", "collect_gradients", "gradient_precision_report"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def amp_train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler, dtype: torch.dtype = torch.bfloat16,
                   loss_fn: LossFn = F.cross_entropy) -> float:
    """One mixed-precision step: autocast forward, scaled backward, unscale + (maybe skipped) step, scale update.

    The device type comes from ``x``. Returns the (unscaled) loss as a float. This is what
    ``Trainer(precision="bf16"|"fp16")`` does inside its loop.

    >>> m = nn.Linear(3, 2); opt = torch.optim.SGD(m.parameters(), lr=0.1)
    >>> s = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    >>> _ = amp_train_step(m, torch.randn(4, 3), torch.tensor([0, 1, 0, 1]), opt, s)
    >>> s.get_scale()   # no overflow: the scale is kept (it grows every growth_interval=2000 steps)
    1024.0
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("x and y must be tensors")
    if dtype not in (torch.bfloat16, torch.float16, torch.float32):
        raise ValueError(f"dtype must be torch.bfloat16, torch.float16 or torch.float32, got {dtype}")
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=x.device.type, dtype=dtype, enabled=dtype != torch.float32):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


def collect_gradients(model: nn.Module) -> torch.Tensor:
    """All parameter gradients of ``model`` flattened into one float32 CPU tensor (parameters without a gradient skipped).

    >>> m = nn.Linear(2, 1); m(torch.ones(1, 2)).sum().backward(); collect_gradients(m).tolist()
    [1.0, 1.0, 1.0]
    """
    grads = [p.grad.detach().float().flatten().cpu() for p in model.parameters() if p.grad is not None]
    if not grads:
        raise ValueError("no parameter has a gradient: run loss.backward() first")
    return torch.cat(grads)


def gradient_precision_report(model: nn.Module, compute_loss: Callable[[nn.Module], torch.Tensor],
                              device_type: str, precisions: tuple[str, ...] = ("bf16",),
                              scales: tuple[float, ...] = (1.0, 2.0**16)) -> list[dict[str, float | str]]:
    """Compare the gradients of one batch computed under autocast with those in fp32, with and without loss scaling.

    ``compute_loss(model)`` returns the loss of a fixed batch. The model is put in eval mode (no
    dropout) so runs differ only by precision. Per precision and scale the row gives the fraction of
    non-zero fp32 gradient values that came out exactly 0 (``lost``) and the relative error
    ``‖g − g_fp32‖ / ‖g_fp32‖``. Gradients are divided by the scale again, as ``GradScaler`` does.

    >>> m = nn.Linear(4, 2); x = torch.randn(8, 4); y = torch.randint(0, 2, (8,))
    >>> rows = gradient_precision_report(m, lambda mod: F.cross_entropy(mod(x), y), "cpu", ("bf16",), (1.0,))
    >>> rows[1]["precision"], rows[1]["lost"]
    ('bf16', 0.0)
    """
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    unknown = set(precisions) - set(dtypes)
    if unknown:
        raise ValueError(f"precisions must be among {sorted(dtypes)}, got {sorted(unknown)}")
    was_training = model.training
    model.eval()

    def grads(dtype: torch.dtype | None, scale: float) -> tuple[float, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device_type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = compute_loss(model)
        (loss.float() * scale).backward()
        return float(loss.detach()), collect_gradients(model) / scale

    try:
        loss32, ref = grads(None, 1.0)
        nonzero = ref != 0
        rows: list[dict[str, float | str]] = [{"precision": "fp32", "scale": 1.0, "loss": loss32, "lost": 0.0, "rel_error": 0.0}]
        for name in precisions:
            for scale in scales:
                loss, g = grads(dtypes[name], scale)
                finite = bool(torch.isfinite(g).all())
                lost = float(((g == 0) & nonzero).sum()) / max(int(nonzero.sum()), 1)
                err = float((g - ref).norm() / ref.norm()) if finite else float("inf")
                rows.append({"precision": name, "scale": scale, "loss": loss, "lost": lost, "rel_error": err})
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return rows
