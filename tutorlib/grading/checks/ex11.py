"""Checks for lesson 11 (instruction tuning): completion-only labels, padding a batch, the completion-only
loss, the share of tokens the loss sees, and decoding until the end-of-sequence token.

Every check follows the protocol (:mod:`tutorlib.grading.protocol`): ``inputs`` draws token ids from the
generator it is given, ``call`` runs the learner's code and returns plain data, ``compare`` checks it
against :mod:`tutorlib.llm.sft`, ``tutorlib.finetune.causal_lm.SFTCollator`` and :func:`tutorlib.llm.greedy`.
"""

from __future__ import annotations

from typing import Any

import torch

from ..compare import CheckFailed, describe, expect_close, expect_number, expect_tensor
from ..protocol import Learner, exercise


def _ints(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return [int(v) for v in x.tolist()]
    if isinstance(x, (list, tuple)) and all(isinstance(v, int) or (isinstance(v, torch.Tensor) and v.numel() == 1) for v in x):
        return [int(v) for v in x]
    return describe(x)


@exercise("ex11_1", points=2, timeout=60)
class CompletionLabelsCheck:
    """``completion_labels(prompt_ids, completion_ids, eos_id)``: ids = prompt + completion + [eos], labels -100 on the prompt."""

    names = ("completion_labels",)
    reference = ("tutorlib.llm.sft.mask_prompt_labels",)
    hints = (
        "input_ids is the prompt, then the completion, then eos_id.",
        "labels are a copy of input_ids with every prompt position set to -100, so the loss only sees the completion and EOS.",
        "do not shift the labels: the model shifts them itself.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"cases": [(torch.randint(50, (n_p,), generator=gen).tolist(), torch.randint(50, (n_c,), generator=gen).tolist())
                          for n_p, n_c in ((4, 3), (1, 5), (6, 1))]}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, outs = learner.function("completion_labels"), []
        for prompt, completion in inputs["cases"]:
            out = learner.call(fn, list(prompt), list(completion), 99, name="completion_labels")
            outs.append([_ints(x) for x in out] if isinstance(out, (tuple, list)) and len(out) == 2 else describe(out))
        return outs

    def compare(self, inputs: dict, outputs: list) -> None:
        from tutorlib.llm.sft import IGNORE_INDEX, mask_prompt_labels

        for (prompt, completion), out in zip(inputs["cases"], outputs):
            what = f"completion_labels({prompt}, {completion}, eos_id=99)"
            if isinstance(out, str) or any(isinstance(x, str) for x in out):
                raise CheckFailed(f"{what} returned {out if isinstance(out, str) else 'a pair that is not two lists of ints'}, "
                                  "expected a pair (input_ids, labels) of lists of ints")
            ids, labels = out
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


@exercise("ex11_2", points=2, timeout=60)
class PadBatchCheck:
    """``pad_batch(items, pad_id)``: right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding)."""

    names = ("pad_batch",)
    reference = ("tutorlib.finetune.causal_lm.SFTCollator",)
    hints = (
        "pad every item on the right to the longest one: input_ids with pad_id, attention_mask 1 on real tokens and 0 on padding.",
        "labels are padded with -100 (not pad_id) so the loss skips the padding; return a dict of (B, T) long tensors.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        from tutorlib.llm.sft import mask_prompt_labels

        batches = []
        for lengths in ((3, 1, 2), (2, 2), (1, 4, 2, 3)):
            items = []
            for n in lengths:
                ids, labels = mask_prompt_labels(torch.randint(50, (n,), generator=gen).tolist(),
                                                 torch.randint(50, (2,), generator=gen).tolist(), eos_id=99)
                items.append({"input_ids": ids, "labels": labels})
            batches.append(items)
        return {"batches": batches}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn = learner.function("pad_batch")
        return [learner.call(fn, [dict(it) for it in items], 0, name="pad_batch") for items in inputs["batches"]]

    def compare(self, inputs: dict, outputs: list) -> None:
        from tutorlib.finetune.causal_lm import SFTCollator

        for items, out in zip(inputs["batches"], outputs):
            what = f"pad_batch(<{len(items)} items of lengths {[len(it['input_ids']) for it in items]}>, pad_id=0)"
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


@exercise("ex11_3", points=2, timeout=60)
class CompletionLossCheck:
    """``completion_loss(logits, labels)``: shifted cross-entropy, mean over the positions not labelled -100."""

    names = ("completion_loss",)
    reference = ("tutorlib.llm.sft.completion_loss",)
    hints = (
        "position t predicts the token at t + 1: compare logits[:, :-1] with labels[:, 1:].",
        "flatten both and use F.cross_entropy(..., ignore_index=-100): the mean is over the positions that count only.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        from tutorlib.llm.sft import IGNORE_INDEX

        cases = []
        for b, t, v in ((1, 5, 7), (3, 6, 11)):
            logits = torch.randn(b, t, v, generator=gen)
            labels = torch.randint(v, (b, t), generator=gen)
            labels[:, : t // 2] = IGNORE_INDEX          # the prompt
            labels[0, -1] = IGNORE_INDEX                 # some padding
            cases.append({"logits": logits, "labels": labels})
        return {"cases": cases}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, dev, outs = learner.function("completion_loss"), learner.device, []
        for c in inputs["cases"]:
            out = learner.call(fn, c["logits"].to(dev), c["labels"].to(dev), name="completion_loss")
            if isinstance(out, torch.Tensor) and out.numel() == 1:  # a loss tensor is the natural answer
                out = float(out.detach())
            outs.append(out)
        return outs

    def compare(self, inputs: dict, outputs: list) -> None:
        from tutorlib.llm.sft import IGNORE_INDEX, completion_loss

        for c, out in zip(inputs["cases"], outputs):
            logits, labels = c["logits"], c["labels"]
            v = logits.shape[-1]
            what = f"completion_loss(logits {tuple(logits.shape)}, labels {tuple(labels.shape)})"
            got = expect_number(out, what)
            want = float(completion_loss(logits, labels))
            hint = ""
            unshifted = float(torch.nn.functional.cross_entropy(logits.reshape(-1, v), labels.reshape(-1), ignore_index=IGNORE_INDEX))
            if abs(got - unshifted) < 1e-5 and abs(want - unshifted) > 1e-5:
                hint = "position t predicts the label at t + 1: compare logits[:, :-1] with labels[:, 1:]"
            expect_close(float(got), want, what, atol=1e-5, rtol=1e-5, hint=hint)


@exercise("ex11_4", points=1, timeout=120)
class LossShareCheck:
    """``loss_share``: the share of label positions that count in the loss over the first 200 training rows."""

    names = ("loss_share",)
    hints = (
        "build (input_ids, labels) for each of the first 200 training rows with the char tokenizer, as above.",
        "loss_share = the number of labels that are not -100 / the number of all labels, a fraction in [0, 1].",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Learner, inputs: dict) -> Any:
        return learner.get("loss_share")

    def compare(self, inputs: dict, outputs: Any) -> None:
        from tutorlib.llm import char_tokenizer, review_summary_examples
        from tutorlib.llm.sft import IGNORE_INDEX, mask_prompt_labels

        share = expect_number(outputs, "`loss_share`")
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


def _table(inputs: dict) -> torch.Tensor:
    eos = 0
    table = inputs["table"].clone()
    table[3, eos] = 20.0                              # after a 3 the model surely stops
    table[:, 3] -= 10.0                               # ...but 3 is rarely chosen
    table[inputs["to3"], 3] = 30.0
    return table


def _table_model(table: torch.Tensor):
    def model(ids: torch.Tensor) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
            raise CheckFailed(f"model was called with {describe(ids)}: pass the tokens so far as a (1, T) tensor")
        return table[ids.cpu()]

    return model


@exercise("ex11_5", points=1, timeout=60)
class GenerateUntilEOSCheck:
    """``generate_until_eos(model, prompt_ids, eos_id, max_new_tokens)``: greedy new tokens, stopping at (and without) EOS."""

    names = ("generate_until_eos",)
    reference = ("tutorlib.llm.greedy",)
    hints = (
        "loop up to max_new_tokens times: run model on the tokens so far as a (1, T) tensor and take the argmax of the last position.",
        "stop as soon as the new token is eos_id, and leave it out; return only the new tokens, not the prompt.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        vocab = 9
        table = 2.0 * torch.randn(vocab, vocab, generator=gen)
        to3 = int(torch.randint(vocab - 1, (1,), generator=gen)) + 1
        prompts = [[int(torch.randint(vocab - 1, (1,), generator=gen)) + 1, start] for start in range(1, vocab)]
        return {"table": table, "to3": to3, "prompts": prompts}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, model = learner.function("generate_until_eos"), _table_model(_table(inputs))
        return [_ints(learner.call(fn, model, list(prompt), 0, 12, name="generate_until_eos")) for prompt in inputs["prompts"]]

    def compare(self, inputs: dict, outputs: list) -> None:
        from tutorlib.llm import greedy

        eos, model = 0, _table_model(_table(inputs))
        for prompt, got in zip(inputs["prompts"], outputs):
            what = f"generate_until_eos(model, {prompt}, eos_id={eos}, max_new_tokens=12)"
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
                raise CheckFailed(f"{what} returned {got}, expected {want}{hint}")
