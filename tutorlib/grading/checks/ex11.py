"""Checks for lesson 11 (prompting, instruction tuning and alignment): few-shot chat messages, the labels of a
chat through its template (loss on the assistant tokens only), the allowed-token step of constrained JSON
decoding, the paired standard error of a gain, and the DPO loss.

Every check follows the protocol (:mod:`tutorlib.grading.protocol`): ``inputs`` draws plain data from the
generator it is given, ``call`` runs the learner's code (for ex11_2 on a small character-level chat
tokenizer, :class:`tutorlib.llm.prompting.CharChatTokenizer`, built in the learner's kernel) and returns plain data, ``compare``
checks it against :mod:`tutorlib.llm.prompting`, :func:`tutorlib.llm.sft.chat_example`,
:mod:`tutorlib.llm.constrained`, :mod:`tutorlib.llm.structured` and :func:`tutorlib.llm.preference.dpo_loss`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..compare import CheckFailed, describe, expect_close, expect_number
from ..protocol import Learner, exercise

from tutorlib.llm.prompting import CharChatTokenizer


def _ints(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return [int(v) for v in x.flatten().tolist()]
    if isinstance(x, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in x):
        return [int(v) for v in x]
    return describe(x)


def _words(gen: torch.Generator, n: int) -> str:
    pool = ["great", "kettle", "broke", "the", "room", "was", "late", "5/5", "not", "again", "service", "cheap"]
    return " ".join(pool[int(i)] for i in torch.randint(len(pool), (n,), generator=gen))


# --------------------------------------------------------------------------- ex11_1: few-shot chat messages


@exercise("ex11_1", points=1, timeout=60)
class FewShotMessagesCheck:
    """``few_shot_messages(query, shots, system)``: system, then each shot as a user and an assistant turn, then the query."""

    names = ("few_shot_messages",)
    reference = ("tutorlib.llm.prompting.few_shot_messages",)
    hints = (
        'a message is a dict {"role": ..., "content": ...}; start with {"role": "system", "content": system} '
        "(only when system is not None).",
        "each (review, answer) shot becomes two messages: the review as the user's turn, the answer as the assistant's.",
        "the query is the last message, a user turn: the model answers it next.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        cases = []
        for k, system in ((2, "Reply in JSON."), (0, "Be brief."), (3, None)):
            shots = [(_words(gen, 4), '{"n": %d}' % int(torch.randint(9, (1,), generator=gen))) for _ in range(k)]
            cases.append({"query": _words(gen, 5), "shots": shots, "system": system})
        return {"cases": cases}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn = learner.function("few_shot_messages")
        return [learner.call(fn, c["query"], [tuple(s) for s in c["shots"]], c["system"], name="few_shot_messages")
                for c in inputs["cases"]]

    def compare(self, inputs: dict, outputs: list) -> None:
        from tutorlib.llm.prompting import few_shot_messages

        for c, got in zip(inputs["cases"], outputs):
            what = f"few_shot_messages({c['query']!r}, {len(c['shots'])} shots, system={c['system']!r})"
            want = few_shot_messages(c["query"], [tuple(s) for s in c["shots"]], system=c["system"])
            if not isinstance(got, list) or not all(isinstance(m, dict) for m in got):
                raise CheckFailed(f"{what} returned {describe(got)}, expected a list of message dicts")
            if got == want:
                continue
            roles = [m.get("role") for m in got]
            hint = ""
            if roles == [m["role"] for m in want] and got[-1] != want[-1]:
                hint = " — the query is the content of the last (user) message"
            elif c["system"] is None and roles and roles[0] == "system":
                hint = " — with system=None there is no system message"
            elif c["system"] is not None and (not roles or roles[0] != "system"):
                hint = " — the first message is the system message"
            elif len(got) != len(want):
                hint = f" — expected {len(want)} messages: each shot is two (user, then assistant)"
            raise CheckFailed(f"{what}: roles {roles}, expected {[m['role'] for m in want]}, or a content differs{hint}")


# --------------------------------------------------------------------------- ex11_2: labels through the chat template


@exercise("ex11_2", points=2, timeout=60)
class ChatLabelsCheck:
    """``chat_labels(tokenizer, messages)``: the chat's ids through the template; labels -100 except each assistant
    answer and its end-of-turn token."""

    names = ("chat_labels",)
    reference = ("tutorlib.llm.sft.chat_example",)
    hints = (
        "ids = tokenizer(tokenizer.apply_chat_template(messages, tokenize=False), add_special_tokens=False)['input_ids'].",
        "an assistant turn k starts after the template of messages[:k] with add_generation_prompt=True (that includes "
        "'<|im_start|>assistant\\n', which is not the answer).",
        "it ends with its end-of-turn token <|im_end|> (tokenizer.eos_token_id), which IS labelled so the model learns "
        "to stop; the newline after it is not. Label every assistant turn, -100 everywhere else.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        cases = []
        for layout in (("system", "user", "assistant"), ("user", "assistant"),
                       ("system", "user", "assistant", "user", "assistant")):
            cases.append([{"role": r, "content": _words(gen, 3 if r != "assistant" else 2)} for r in layout])
        return {"cases": cases}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, tok, outs = learner.function("chat_labels"), CharChatTokenizer(), []
        for msgs in inputs["cases"]:
            out = learner.call(fn, tok, [dict(m) for m in msgs], name="chat_labels")
            outs.append([_ints(x) for x in out] if isinstance(out, (tuple, list)) and len(out) == 2 else describe(out))
        return outs

    def compare(self, inputs: dict, outputs: list) -> None:
        from tutorlib.llm.sft import IGNORE_INDEX, chat_example

        tok = CharChatTokenizer()
        for msgs, out in zip(inputs["cases"], outputs):
            what = f"chat_labels(tokenizer, {[m['role'] for m in msgs]})"
            if isinstance(out, str) or any(isinstance(x, str) for x in out):
                raise CheckFailed(f"{what} returned {out if isinstance(out, str) else 'a pair that is not two lists of ints'}, "
                                  "expected a pair (input_ids, labels) of lists of ints")
            ids, labels = out
            ref = chat_example(tok, msgs)
            if ids != ref["input_ids"]:
                raise CheckFailed(f"{what}: input_ids differ from the chat template's tokens (got {len(ids)} ids, expected "
                                  f"{len(ref['input_ids'])}): tokenize apply_chat_template(messages, tokenize=False)")
            if labels == ref["labels"]:
                continue
            if len(labels) != len(ids):
                raise CheckFailed(f"{what}: {len(labels)} labels for {len(ids)} ids: one label per token")
            kept = [i for i, y in enumerate(labels) if y != IGNORE_INDEX]
            want = [i for i, y in enumerate(ref["labels"]) if y != IGNORE_INDEX]
            hint = ""
            if len(kept) == len(ids):
                hint = "the prompt (system and user turns) must be -100"
            elif any(labels[i] not in (IGNORE_INDEX, ids[i]) for i in range(len(ids))):
                hint = "a labelled position's label is its own token id (do not shift: the model shifts them itself)"
            elif set(want) < set(kept) and all(ids[i] != tok.eos_token_id for i in set(kept) - set(want)):
                hint = "label only the answer: the '<|im_start|>assistant\\n' header and the newline after <|im_end|> are not"
            elif set(kept) < set(want) and all(ids[i] == tok.eos_token_id for i in set(want) - set(kept)):
                hint = "label the end-of-turn token <|im_end|> too, so the model learns to stop"
            elif set(kept) < set(want):
                hint = "label every assistant turn, not just the last one"
            raise CheckFailed(f"{what}: labelled positions {kept[:12]}{'...' if len(kept) > 12 else ''}, expected "
                              f"{want[:12]}{'...' if len(want) > 12 else ''}" + (f" — {hint}" if hint else ""))


# --------------------------------------------------------------------------- ex11_3: constrained decoding's allowed tokens


@exercise("ex11_3", points=2, timeout=60)
class AllowedTokensCheck:
    """``allowed_next_tokens(candidates, prefix)``: sorted ids that continue ``prefix`` towards some candidate."""

    names = ("allowed_next_tokens",)
    reference = ("tutorlib.llm.constrained.allowed_next_tokens",)
    hints = (
        "a candidate counts only if its first len(prefix) tokens equal the prefix and it is longer than the prefix.",
        "the allowed token is that candidate's token at position len(prefix); return them sorted, each once.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        cands = []
        for _ in range(6):
            n = int(torch.randint(1, 4, (1,), generator=gen))
            cands.append([int(t) for t in torch.randint(1, 6, (n,), generator=gen)])
        cands += [[7, 8, 9], [7, 8, 2], [7, 3]]
        prefixes = [[], [7], [7, 8], [7, 8, 9], [4, 4, 4, 4]] + [c[:1] for c in cands[:3]] + [c[:2] for c in cands[3:5]]
        return {"candidates": cands, "prefixes": prefixes}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn = learner.function("allowed_next_tokens")
        return [_ints(learner.call(fn, [list(c) for c in inputs["candidates"]], list(p), name="allowed_next_tokens"))
                for p in inputs["prefixes"]]

    def compare(self, inputs: dict, outputs: list) -> None:
        from tutorlib.llm.constrained import allowed_next_tokens

        cands = inputs["candidates"]
        for prefix, got in zip(inputs["prefixes"], outputs):
            what = f"allowed_next_tokens(candidates, prefix={prefix})"
            want = allowed_next_tokens(cands, prefix)
            if got == want:
                continue
            if isinstance(got, str):
                raise CheckFailed(f"{what} returned {got}, expected a list of ints")
            hint = ""
            if sorted(set(got)) == want:
                hint = " — return each id once, sorted"
            elif set(got) > set(want):
                hint = " — keep only candidates whose first len(prefix) tokens equal the prefix (and that are longer)"
            elif set(got) < set(want):
                hint = " — every candidate that starts with the prefix contributes its next token"
            raise CheckFailed(f"{what} returned {got}, expected {want}{hint}")


# --------------------------------------------------------------------------- ex11_4: paired standard error


@exercise("ex11_4", points=2, timeout=60)
class PairedGainCheck:
    """``paired_gain(a, b)``: mean of the per-example differences and its standard error sd(d) / sqrt(n)."""

    names = ("paired_gain",)
    reference = ("tutorlib.llm.metrics.paired_gain",)
    hints = (
        "d[i] = a[i] - b[i], example by example; the gain is the mean of d.",
        "its standard error is the sample standard deviation of d (divide by n - 1) over sqrt(n): the spread of "
        "example difficulty that a and b share cancels in d.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        cases = []
        for n in (12, 40):
            base = torch.rand(n, generator=gen)
            a = (base + 0.2 * torch.rand(n, generator=gen)).clamp(0, 1)
            b = (base - 0.1 * torch.rand(n, generator=gen)).clamp(0, 1)
            cases.append({"a": [round(float(x), 3) for x in a], "b": [round(float(x), 3) for x in b]})
        return {"cases": cases}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, outs = learner.function("paired_gain"), []
        for c in inputs["cases"]:
            out = learner.call(fn, list(c["a"]), list(c["b"]), name="paired_gain")
            outs.append([float(x) if isinstance(x, torch.Tensor) and x.numel() == 1 else x for x in out]
                        if isinstance(out, (tuple, list)) and len(out) == 2 else describe(out))
        return outs

    def compare(self, inputs: dict, outputs: list) -> None:
        from tutorlib.llm.metrics import paired_gain

        for c, out in zip(inputs["cases"], outputs):
            n = len(c["a"])
            what = f"paired_gain(a, b) with n={n}"
            if isinstance(out, str):
                raise CheckFailed(f"{what} returned {out}, expected a pair (mean, standard error)")
            mean, se = (expect_number(x, what) for x in out)
            want_mean, want_se = paired_gain(c["a"], c["b"])
            expect_close(mean, want_mean, f"{what}: the mean difference", atol=1e-9, rtol=1e-9)
            d = torch.tensor(c["a"], dtype=torch.float64) - torch.tensor(c["b"], dtype=torch.float64)
            sa, sb = (torch.tensor(c[k], dtype=torch.float64).std() for k in ("a", "b"))
            hint = ""
            if abs(se - math.sqrt(float(sa ** 2 + sb ** 2) / n)) < 1e-9:
                hint = "that is the unpaired error: use the spread of the differences d = a - b"
            elif abs(se - float(d.std(unbiased=False)) / math.sqrt(n)) < 1e-9:
                hint = "use the sample standard deviation (divide by n - 1)"
            elif abs(se - float(d.std())) < 1e-9:
                hint = "divide the standard deviation by sqrt(n)"
            elif abs(se - float(d.std()) / n) < 1e-9:
                hint = "divide by sqrt(n), not n"
            expect_close(se, want_se, f"{what}: the standard error", atol=1e-9, rtol=1e-9, hint=hint)


# --------------------------------------------------------------------------- ex11_5: the DPO loss


@exercise("ex11_5", points=2, timeout=60)
class DPOLossCheck:
    """``dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)``: -mean log σ(β·(Δchosen − Δrejected))."""

    names = ("dpo_loss",)
    reference = ("tutorlib.llm.preference.dpo_loss",)
    hints = (
        "each answer's implicit reward is beta * (policy log-prob - reference log-prob).",
        "the loss is -log sigmoid(reward_chosen - reward_rejected), averaged over the pairs: use F.logsigmoid, "
        "which stays finite for large margins.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        cases = []
        for b, beta in ((4, 0.1), (7, 0.5)):
            ref = -20 - 10 * torch.rand(2, b, generator=gen)
            pol = ref + 8 * torch.randn(2, b, generator=gen)
            cases.append({"pc": pol[0], "pr": pol[1], "rc": ref[0], "rr": ref[1], "beta": beta})
        return {"cases": cases}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, dev, outs = learner.function("dpo_loss"), learner.device, []
        for c in inputs["cases"]:
            out = learner.call(fn, *(c[k].to(dev) for k in ("pc", "pr", "rc", "rr")), c["beta"], name="dpo_loss")
            if isinstance(out, tuple) and hasattr(out, "loss"):
                out = out.loss
            outs.append(float(out.detach()) if isinstance(out, torch.Tensor) and out.numel() == 1 else out)
        return outs

    def compare(self, inputs: dict, outputs: list) -> None:
        import torch.nn.functional as F

        from tutorlib.llm.preference import dpo_loss

        for c, got in zip(inputs["cases"], outputs):
            what = f"dpo_loss(... {c['pc'].numel()} pairs, beta={c['beta']})"
            got = expect_number(got, what)
            want = float(dpo_loss(c["pc"], c["pr"], c["rc"], c["rr"], beta=c["beta"]).loss)
            margin_no_ref = c["beta"] * (c["pc"] - c["pr"])
            margin = c["beta"] * ((c["pc"] - c["rc"]) - (c["pr"] - c["rr"]))
            hint = ""
            if abs(got - float(-F.logsigmoid(margin_no_ref).mean())) < 1e-6:
                hint = "subtract the reference log-probs: the reward is beta * (policy - reference)"
            elif abs(got - float(-F.logsigmoid(-margin).mean())) < 1e-6:
                hint = "the margin is chosen minus rejected, not the other way round"
            elif abs(got - float(-F.logsigmoid(margin / c["beta"]).mean())) < 1e-6:
                hint = "multiply the log-ratio difference by beta"
            elif abs(got - float(-F.logsigmoid(margin).sum())) < 1e-6:
                hint = "average over the pairs, do not sum"
            expect_close(got, want, what, atol=1e-5, rtol=1e-5, hint=hint)


# --------------------------------------------------------------------------- ex11_6: NF4 block quantization


@exercise("ex11_6", points=2, timeout=60)
class NF4BlocksCheck:
    """``nf4_blocks(weight, block_size, levels)``: per-block absmax scales, nearest-level codes, and the weight back."""

    names = ("nf4_blocks",)
    reference = ("tutorlib.llm.nf4.quantize_nf4",)
    hints = (
        "flatten the weight and view it as (n_blocks, block_size); each block's scale is its largest absolute value.",
        "divide each block by its scale (now in [-1, 1]); a value's code is the index of the nearest of the 16 levels: "
        "(x.unsqueeze(-1) - levels).abs().argmin(-1).",
        "the weight back is levels[codes] * scale of its block, in the weight's shape. An all-zero block keeps scale 0 "
        "(divide by 1 there instead).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        w = torch.randn(4, 32, generator=gen) * torch.tensor([0.02, 0.5, 2.0, 1.0]).unsqueeze(-1)
        w[3, 16:] = 0.0                                   # an all-zero block
        return {"weight": w, "block_size": 16}

    def call(self, learner: Learner, inputs: dict) -> Any:
        from tutorlib.llm.nf4 import NF4_LEVELS

        out = learner.call(learner.function("nf4_blocks"), inputs["weight"].clone(), inputs["block_size"],
                           torch.tensor(NF4_LEVELS), name="nf4_blocks")
        if isinstance(out, (tuple, list)) and len(out) == 3:
            return [x.detach().cpu() if isinstance(x, torch.Tensor) else x for x in out]
        return describe(out)

    def compare(self, inputs: dict, outputs: Any) -> None:
        from tutorlib.llm.nf4 import dequantize_nf4, quantize_nf4, unpack_codes

        w, bs = inputs["weight"], inputs["block_size"]
        what = f"nf4_blocks(weight {tuple(w.shape)}, block_size={bs}, levels)"
        if isinstance(outputs, str) or not all(isinstance(x, torch.Tensor) for x in outputs):
            raise CheckFailed(f"{what} returned {outputs if isinstance(outputs, str) else 'something else'}, "
                              "expected three tensors (codes, scales, weight back)")
        codes, scales, back = outputs
        q = quantize_nf4(w, block_size=bs)
        want_scales = q.scales
        if scales.numel() == 1:
            raise CheckFailed(f"{what}: one scale for the whole weight; every block of {bs} values has its own absmax scale")
        expect_close(scales.reshape(-1).float(), want_scales, f"{what}: the block scales", atol=1e-6,
                     hint="a block's scale is its largest ABSOLUTE value" if torch.allclose(
                         scales.reshape(-1).float(), w.reshape(-1, bs).amax(1)) else "")
        want_codes = unpack_codes(q.codes).long()
        if codes.reshape(-1).long().tolist() != want_codes.tolist():
            bad = int((codes.reshape(-1).long() != want_codes).sum())
            raise CheckFailed(f"{what}: {bad} of {want_codes.numel()} codes differ: a code is the index of the level nearest "
                              "to value / its block's scale")
        if tuple(back.shape) != tuple(w.shape):
            raise CheckFailed(f"{what}: the weight back has shape {tuple(back.shape)}, expected {tuple(w.shape)}")
        expect_close(back.float(), dequantize_nf4(q), f"{what}: the weight back", atol=1e-6,
                     hint="multiply each level by its block's scale")
