"""Checks for lesson 11 (instruction tuning): completion-only labels for SFT.

The reference is :func:`tutorlib.llm.sft.mask_prompt_labels`; inputs come from the check's private generator.
"""

from __future__ import annotations

import torch

from ..compare import CheckFailed, call_safely, describe
from ..registry import CheckContext, register


@register("ex11_1", points=2, timeout=60)
def check_completion_labels(ctx: CheckContext) -> None:
    """``completion_labels(prompt_ids, completion_ids, eos_id)``: ids = prompt + completion + [eos], labels -100 on the prompt."""
    from tutorlib.llm.sft import IGNORE_INDEX, mask_prompt_labels

    fn = ctx.function("completion_labels")
    for n_p, n_c in ((4, 3), (1, 5), (6, 1)):
        prompt = ctx.randint(50, n_p).tolist()
        completion = ctx.randint(50, n_c).tolist()
        what = f"completion_labels({prompt}, {completion}, eos_id=99)"
        out = call_safely(fn, prompt, completion, 99, name="completion_labels")
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise CheckFailed(f"{what} returned {describe(out)}, expected a pair (input_ids, labels)")
        ids, labels = ([int(v) for v in (x.tolist() if isinstance(x, torch.Tensor) else x)] for x in out)
        want_ids, want_labels = mask_prompt_labels(prompt, completion, eos_id=99)
        if ids != want_ids:
            hint = " (append eos_id after the completion)" if ids == prompt + completion else ""
            raise CheckFailed(f"{what}: input_ids are {ids}, expected {want_ids}{hint}")
        if labels != want_labels:
            hint = ""
            if labels == want_ids:
                hint = f" — the prompt positions must be {IGNORE_INDEX} so the loss ignores them"
            elif labels[1:] == want_labels[:-1] or labels[:-1] == want_labels[1:]:
                hint = " — do not shift the labels: the model shifts them itself"
            raise CheckFailed(f"{what}: labels are {labels}, expected {want_labels}{hint}")
