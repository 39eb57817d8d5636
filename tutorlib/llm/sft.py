"""Supervised fine-tuning data for causal LMs: the loss on the completion only.

The model sees ``prompt + completion + EOS``; the prompt positions get the label :data:`IGNORE_INDEX`,
which ``transformers``' (and ``F.cross_entropy``'s) loss ignores, so the model learns to write the
answer, not the question. ``tutorlib finetune --task causal-lm`` builds its examples with
:func:`mask_prompt_labels`.

>>> mask_prompt_labels([5, 6], [7, 8], eos_id=0)
([5, 6, 7, 8, 0], [-100, -100, 7, 8, 0])
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["IGNORE_INDEX", "mask_prompt_labels", "completion_loss"]

#: The label ``transformers`` (and ``F.cross_entropy``) ignore.
IGNORE_INDEX = -100


def mask_prompt_labels(prompt_ids: Sequence[int], completion_ids: Sequence[int], eos_id: int | None = None,
                       max_length: int | None = None) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` for one example: labels equal the ids on the completion (+EOS), -100 on the prompt.

    ``max_length`` truncates the prompt from the left first (the completion is what is learned),
    then the completion from the right.

    >>> mask_prompt_labels([1, 2, 3], [4], max_length=3)
    ([2, 3, 4], [-100, -100, 4])
    """
    prompt, completion = list(prompt_ids), list(completion_ids) + ([eos_id] if eos_id is not None else [])
    if not completion:
        raise ValueError("the completion has no tokens: nothing to learn")
    if max_length is not None:
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")
        completion = completion[:max_length - 1] if len(completion) >= max_length else completion
        keep = max_length - len(completion)
        prompt = prompt[-keep:] if keep > 0 else []
    return prompt + completion, [IGNORE_INDEX] * len(prompt) + completion


def completion_loss(logits: "torch.Tensor", labels: "torch.Tensor") -> "torch.Tensor":
    """Mean next-token cross-entropy over the labelled positions: what a causal LM's ``loss`` is with these labels.

    Position ``t`` predicts ``labels[:, t + 1]`` (the shift a ``transformers`` causal LM applies itself);
    positions whose label is :data:`IGNORE_INDEX` (the prompt, padding) are left out of the mean.

    >>> import torch
    >>> logits = torch.zeros(1, 4, 10)                   # uniform over 10 tokens
    >>> round(float(completion_loss(logits, torch.tensor([[-100, -100, 3, 0]]))), 4)   # = ln 10
    2.3026
    """
    import torch
    from torch.nn import functional as F

    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"expected logits (B, T, V) and labels (B, T), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    if not bool((labels[:, 1:] != IGNORE_INDEX).any()):
        raise ValueError("no position is labelled: every label after the first is -100, so there is nothing to learn")
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1).to(torch.long),
                           ignore_index=IGNORE_INDEX)
