"""Checks for lesson 11 (instruction tuning): completion-only labels, padding a batch, the completion-only
loss, the share of tokens the loss sees, and decoding until the end-of-sequence token.

The references are :mod:`tutorlib.llm.sft`, ``tutorlib.finetune.causal_lm.SFTCollator`` and
:func:`tutorlib.llm.greedy`; inputs come from the check's private generator.
"""

from __future__ import annotations

import torch

from ..compare import CheckFailed, call_safely, describe, expect_close, expect_number, expect_tensor
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


@register("ex11_2", points=2, timeout=60)
def check_pad_batch(ctx: CheckContext) -> None:
    """``pad_batch(items, pad_id)``: right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding)."""
    from tutorlib.finetune.causal_lm import SFTCollator
    from tutorlib.llm.sft import mask_prompt_labels

    fn = ctx.function("pad_batch")
    for lengths in ((3, 1, 2), (2, 2), (1, 4, 2, 3)):
        items = []
        for n in lengths:
            ids, labels = mask_prompt_labels(ctx.randint(50, n).tolist(), ctx.randint(50, 2).tolist(), eos_id=99)
            items.append({"input_ids": ids, "labels": labels})
        what = f"pad_batch(<{len(items)} items of lengths {[len(it['input_ids']) for it in items]}>, pad_id=0)"
        out = call_safely(fn, items, 0, name="pad_batch")
        want = SFTCollator(pad_id=0)(items)
        if not isinstance(out, dict) or set(want) - set(out):
            raise CheckFailed(f"{what} returned {describe(out)}, expected a dict with keys {sorted(want)}")
        for key, ref in want.items():
            got = expect_tensor(out[key], f"{what}[{key!r}]", shape=tuple(ref.shape))
            if not torch.equal(got.cpu().long(), ref):
                hint = ""
                if key == "labels" and bool((got == 0).any()) and not bool((ref == 0).any()):
                    hint = " — pad the labels with -100, not pad_id, so the loss skips the padding"
                elif key == "attention_mask":
                    hint = " — 1 on real tokens, 0 on padding"
                raise CheckFailed(f"{what}[{key!r}] is {got.tolist()}, expected {ref.tolist()}{hint}")


@register("ex11_3", points=2, timeout=60)
def check_completion_loss(ctx: CheckContext) -> None:
    """``completion_loss(logits, labels)``: shifted cross-entropy, mean over the positions not labelled -100."""
    from tutorlib.llm.sft import IGNORE_INDEX, completion_loss

    fn = ctx.function("completion_loss")
    for b, t, v in ((1, 5, 7), (3, 6, 11)):
        logits = ctx.randn(b, t, v)
        labels = ctx.randint(v, b, t)
        labels[:, : t // 2] = IGNORE_INDEX          # the prompt
        labels[0, -1] = IGNORE_INDEX                 # some padding
        what = f"completion_loss(logits {tuple(logits.shape)}, labels {tuple(labels.shape)})"
        out = call_safely(fn, logits, labels, name="completion_loss")
        if isinstance(out, torch.Tensor) and out.numel() == 1:  # a loss tensor is the natural answer
            out = float(out.detach())
        got = expect_number(out, what)
        want = float(completion_loss(logits, labels))
        hint = ""
        unshifted = float(torch.nn.functional.cross_entropy(logits.reshape(-1, v), labels.reshape(-1), ignore_index=IGNORE_INDEX))
        if abs(got - unshifted) < 1e-5 and abs(want - unshifted) > 1e-5:
            hint = "position t predicts the label at t + 1: compare logits[:, :-1] with labels[:, 1:]"
        expect_close(float(got), want, what, atol=1e-5, rtol=1e-5, hint=hint)


@register("ex11_4", points=1, timeout=120)
def check_loss_share(ctx: CheckContext) -> None:
    """``loss_share``: the share of label positions that count in the loss over the first 200 training rows."""
    from tutorlib.llm import char_tokenizer, review_summary_examples
    from tutorlib.llm.sft import IGNORE_INDEX, mask_prompt_labels

    share = expect_number(ctx.get("loss_share"), "`loss_share`")
    tok = char_tokenizer()
    counted = total = 0
    for row in review_summary_examples("train", n=200):
        _, labels = mask_prompt_labels(tok(row["prompt"], add_special_tokens=False)["input_ids"],
                                       tok(row["completion"], add_special_tokens=False)["input_ids"], tok.eos_token_id)
        counted += sum(lab != IGNORE_INDEX for lab in labels)
        total += len(labels)
    want = counted / total
    hint = "give a fraction between 0 and 1, not a percentage" if abs(share - 100 * want) < 1e-6 else ""
    expect_close(float(share), want, "`loss_share`", atol=1e-6, rtol=0, hint=hint)


@register("ex11_5", points=1, timeout=60)
def check_generate_until_eos(ctx: CheckContext) -> None:
    """``generate_until_eos(model, prompt_ids, eos_id, max_new_tokens)``: greedy new tokens, stopping at (and without) EOS."""
    from tutorlib.llm import greedy

    fn = ctx.function("generate_until_eos")
    vocab, eos = 9, 0
    table = 2.0 * torch.randn(vocab, vocab, generator=ctx.generator)
    table[3, eos] = 20.0                              # after a 3 the model surely stops
    table[:, 3] -= 10.0                               # ...but 3 is rarely chosen
    table[int(ctx.randint(vocab - 1, 1)) + 1, 3] = 30.0

    def model(ids: torch.Tensor) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
            raise CheckFailed(f"model was called with {describe(ids)}: pass the tokens so far as a (1, T) tensor")
        return table[ids.cpu()]

    for start in range(1, vocab):
        prompt = [int(ctx.randint(vocab - 1, 1)) + 1, start]
        what = f"generate_until_eos(model, {prompt}, eos_id={eos}, max_new_tokens=12)"
        out = call_safely(fn, model, prompt, eos, 12, name="generate_until_eos")
        got = [int(v) for v in (out.tolist() if isinstance(out, torch.Tensor) else out)] if isinstance(out, (list, tuple, torch.Tensor)) else out
        new = greedy(model, torch.tensor([prompt]), 12, eos_id=eos)[0, len(prompt):].tolist()
        want = new[:new.index(eos)] if eos in new else new
        if got != want:
            hint = ""
            if isinstance(got, list) and got[:len(prompt)] == prompt:
                hint = " — return only the new tokens, not the prompt"
            elif isinstance(got, list) and got == new[:len(want) + 1]:
                hint = " — leave the EOS token out of the result"
            elif isinstance(got, list) and eos in got:
                hint = " — stop as soon as the model produces eos_id"
            raise CheckFailed(f"{what} returned {describe(out) if not isinstance(got, list) else got}, expected {want}{hint}")
