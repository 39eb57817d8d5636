"""Evaluating or predicting with a model that is not being trained: no optimizer, the model stays where it is.

The same loop and metrics as :class:`~tutorlib.train.Trainer` (``evaluate`` / ``predict``), for a
finished model: a quantized or pruned model, a teacher labelling data, a saved classifier, a learner's
model in a check. Nothing is trained and no optimizer is built (quantized models have no float
parameters to optimize); the model is evaluated on the device it lives on unless ``device`` says
otherwise.

>>> import torch
>>> from torch import nn
>>> ds = torch.utils.data.TensorDataset(torch.randn(8, 3), torch.zeros(8, dtype=torch.long))
>>> sorted(evaluate(nn.Linear(3, 2), ds))
['val_accuracy', 'val_loss']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tutorlib.train.trainer import StepFn, Trainer

__all__ = ["evaluate", "predict", "model_device"]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without any).

    >>> model_device(nn.Linear(2, 2))
    device(type='cpu')
    """
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _evaluator(model: nn.Module, collate_fn: Callable | None, batch_size: int, device: str | torch.device | None,
               step_fn: StepFn | None, loss_fn: Callable | None, metrics: Iterable[str] = ("accuracy",)) -> Trainer:
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    return Trainer(model, manual_optimization=True, device=device if device is not None else model_device(model),
                   batch_size=batch_size, eval_batch_size=batch_size, shuffle=False, collate_fn=collate_fn,
                   step_fn=step_fn, loss_fn=loss_fn, metrics=metrics, progress=False, log=False)


def evaluate(model: nn.Module, data: Dataset | DataLoader, *, collate_fn: Callable | None = None, batch_size: int = 64,
             device: str | torch.device | None = None, step_fn: StepFn | None = None,
             loss_fn: Callable | None = None, metrics: Iterable[str] = ("accuracy",), prefix: str = "val"
             ) -> dict[str, float]:
    """Mean loss and ``metrics`` ("accuracy", "f1") of ``model`` on ``data`` (``{prefix}_loss``, ``{prefix}_accuracy``, …).

    The model's train/eval mode is restored afterwards.

    >>> ds = torch.utils.data.TensorDataset(torch.ones(4, 2), torch.ones(4, dtype=torch.long))
    >>> lin = nn.Linear(2, 2); _ = lin.bias.data.copy_(torch.tensor([0.0, 9.0]))
    >>> evaluate(lin, ds, prefix="test")["test_accuracy"]
    1.0
    """
    return _evaluator(model, collate_fn, batch_size, device, step_fn, loss_fn, metrics).evaluate(data, prefix=prefix)


def predict(model: nn.Module, data: Dataset | DataLoader, *, collate_fn: Callable | None = None, batch_size: int = 64,
            device: str | torch.device | None = None, step_fn: StepFn | None = None, class_ids: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Concatenated float32 logits (or, with ``class_ids``, predicted class ids) of ``model`` over ``data``
    (on the CPU), and the targets when batches have them.

    The model's train/eval mode is restored afterwards.

    >>> ds = torch.utils.data.TensorDataset(torch.randn(5, 3), torch.zeros(5, dtype=torch.long))
    >>> logits, targets = predict(nn.Linear(3, 2), ds); tuple(logits.shape), targets.tolist()
    ((5, 2), [0, 0, 0, 0, 0])
    """
    was = model.training
    try:
        return _evaluator(model, collate_fn, batch_size, device, step_fn, None).predict(data, class_ids=class_ids)
    finally:
        model.train(was)
