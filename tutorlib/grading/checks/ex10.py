"""Checks for lesson 10 (inside a Transformer LLM).

Every check follows the three-part protocol of :mod:`tutorlib.grading.protocol`: top-p filtering, beam
search and the repetition penalty (ex10_1–3), one BPE merge step, RMSNorm, RoPE, causal grouped-query
attention, a KV-cache decoding step and the KV cache of SmolLM2 measured (ex10_4–9). ``inputs`` draws
everything from the generator it is given (for beam search: the random tables of a small "language
model", which ``call`` turns into the ``next_logits`` function the learner's code calls); the references
are :mod:`tutorlib.llm` (itself checked against ``transformers``).

>>> out = reference_beam_search(lambda ids: torch.zeros(ids.shape[0], 5), torch.zeros(1, 2, dtype=torch.long), 2, 2)
>>> tuple(out.shape)
(1, 4)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..compare import CheckFailed, describe, expect_close, expect_number, expect_tensor
from ..protocol import Learner, exercise

__all__ = ["reference_beam_search"]


def reference_beam_search(next_logits: Any, ids: torch.Tensor, max_new_tokens: int, num_beams: int) -> torch.Tensor:
    """The best beam of :func:`tutorlib.llm.beam_search` for a ``next_logits(ids (n, T)) -> (n, V)`` function."""
    from tutorlib.llm import beam_search

    return beam_search(lambda x: next_logits(x), ids, max_new_tokens, num_beams=num_beams)


# --------------------------------------------------------------------------- ex10_1: top-p (nucleus) filtering


def _top_p_removed(logits: torch.Tensor, p: float, *, descending: bool = True, unsort: bool = True) -> torch.Tensor:
    """Which tokens a top-p filter removes — the right one, or a typical variant (for hints).

    ``descending=False`` sorts the wrong way; ``unsort=False`` forgets to scatter the mask back to the
    tokens' own positions.
    """
    sorted_logits, order = torch.sort(logits, descending=descending, dim=-1)
    probs = sorted_logits.softmax(dim=-1)
    remove = probs.cumsum(dim=-1) - probs >= p
    remove[..., 0] = False
    return torch.zeros_like(remove).scatter(-1, order, remove) if unsort else remove


@exercise("ex10_1", points=2, timeout=60)
class TopPCheck:
    """``top_p_filter(logits, p)``: -inf outside the nucleus, logits unchanged inside, at least one token kept."""

    names = ("top_p_filter",)
    reference = ("tutorlib.llm.decoding.top_p_filter",)
    hints = ("sort the logits in descending order (torch.sort(..., descending=True) also gives `order`), take the "
             "softmax and its running total: probs.cumsum(-1)",
             "a token stays while the probability of the tokens BEFORE it (cumsum - probs) is still below p; the "
             "most likely token always stays",
             "the mask is in sorted order: put it back at the tokens' own positions with "
             "torch.zeros_like(remove).scatter(-1, order, remove), then logits.masked_fill(mask, float('-inf'))")

    def inputs(self, gen: torch.Generator) -> dict:
        return {"cases": [{"logits": 2 * torch.randn(3, 20, generator=gen), "p": p} for p in (0.9, 0.5, 0.05, 1.0)]}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn = learner.function("top_p_filter")
        return [learner.call(fn, c["logits"].to(learner.device), c["p"]) for c in inputs["cases"]]

    def compare(self, inputs: dict, outputs: Any) -> None:
        from tutorlib.llm.decoding import top_p_filter

        cases = inputs["cases"]
        for c, out in zip(cases, outputs):
            what = f"top_p_filter(logits of shape {tuple(c['logits'].shape)}, p={c['p']})"
            expect_tensor(out, what, shape=tuple(c["logits"].shape), dtype=c["logits"].dtype, device=self.device)
        outs = [out.detach().cpu() for out in outputs]
        removed = [torch.isneginf(out) for out in outs]
        wants = [top_p_filter(c["logits"], c["p"]) for c in cases]
        # A mistake made the same way in every case names itself (one case alone can match several).
        variants = {
            "the right number of tokens, but not the right ones: the mask is in sorted order, put it back at the "
            "tokens' own positions with .scatter(-1, order, remove)": dict(unsort=False),
            "you keep the least likely tokens: sort the logits in DESCENDING order": dict(descending=False),
        }
        diagnosis = ""
        for msg, kw in variants.items():
            alts = [_top_p_removed(c["logits"], c["p"], **kw) for c in cases]
            if all(torch.equal(r, alt) for r, alt in zip(removed, alts)) and \
                    any(not torch.equal(alt, torch.isneginf(w)) for alt, w in zip(alts, wants)):
                diagnosis = msg
                break
        for c, out, got_removed, want in zip(cases, outs, removed, wants):
            logits, p = c["logits"], c["p"]
            what = f"top_p_filter(logits of shape {tuple(logits.shape)}, p={p})"
            want_removed = torch.isneginf(want)
            if not torch.equal(got_removed, want_removed):
                row = int((got_removed != want_removed).any(1).nonzero()[0])
                kept, should = int((~got_removed[row]).sum()), int((~want_removed[row]).sum())
                hint = diagnosis
                if hint:
                    pass
                elif not got_removed.any() and bool((out[want_removed] == out[want_removed][0]).all()):
                    hint = ("no logit is -inf: replace the removed tokens' logits by float('-inf'), so that the softmax "
                            "gives them probability exactly 0")
                elif kept == should + 1:
                    hint = ("you keep one token too many: a token stays only while the probability of the tokens "
                            "before it is below p")
                elif kept == should - 1:
                    hint = "one token too few: keep the token that makes the running total reach p"
                elif kept == logits.shape[-1] - should:
                    hint = "the kept and removed sets are swapped"
                raise CheckFailed(f"{what}: row {row} keeps {kept} tokens, expected {should}" + (f" ({hint})" if hint else ""))
            expect_close(out[~want_removed], want[~want_removed], f"the kept logits of {what}", atol=1e-6,
                         hint="do not rescale the kept logits: only replace the removed ones by -inf")


# --------------------------------------------------------------------------- ex10_2: beam search


def _table_lm(tables: tuple[torch.Tensor, torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A small deterministic "language model": next-token logits from the last two tokens, looked up in two tables."""
    table1, table2 = tables

    def next_logits(ids: torch.Tensor) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
            raise CheckFailed(f"next_logits was called with {describe(ids)}: pass the beams as a (n_beams, T) tensor")
        if ids.is_floating_point():
            raise CheckFailed(f"next_logits was called with {ids.dtype} ids: keep token ids as integers (torch.long)")
        prev = ids[:, -2] if ids.shape[1] > 1 else ids[:, -1]
        return (table1[ids[:, -1].cpu()] + table2[prev.cpu()]).to(ids.device)
    return next_logits


def _beams(next_logits: Callable[[torch.Tensor], torch.Tensor], ids: torch.Tensor, steps: int, num_beams: int, *,
           score: str = "log_softmax", accumulate: bool = True) -> torch.Tensor:
    """The final beams (best first) of a beam search — the right one, or a typical variant (for hints).

    ``score="softmax"`` adds probabilities, ``"raw"`` adds raw logits; ``accumulate=False`` ranks by the new
    token alone.
    """
    beams, scores = ids, torch.zeros(1, dtype=torch.float64)
    for _ in range(steps):
        logits = next_logits(beams).double()
        step = {"log_softmax": logits.log_softmax(-1), "softmax": logits.softmax(-1), "raw": logits}[score]
        vocab = step.shape[-1]
        total = ((scores[:, None] if accumulate else 0) + step).reshape(-1)
        scores, flat = torch.topk(total, min(num_beams, total.numel()))
        beams = torch.cat([beams[flat // vocab], (flat % vocab)[:, None]], dim=1)
    return beams


def _greedy(next_logits: Callable[[torch.Tensor], torch.Tensor], ids: torch.Tensor, steps: int) -> torch.Tensor:
    for _ in range(steps):
        ids = torch.cat([ids, next_logits(ids).argmax(-1, keepdim=True)], 1)
    return ids


def _beam_answers(next_logits: Callable[[torch.Tensor], torch.Tensor], case: dict) -> dict[str, torch.Tensor]:
    """The right answer on ``case`` and those of the typical mistakes (the check's inputs separate them all)."""
    ids, steps, k = case["ids"], case["steps"], case["num_beams"]
    return {"right": reference_beam_search(next_logits, ids, steps, k),
            "greedy": _greedy(next_logits, ids, steps),
            "accumulate": _beams(next_logits, ids, steps, k, accumulate=False)[:1],
            "softmax": _beams(next_logits, ids, steps, k, score="softmax")[:1],
            "raw": _beams(next_logits, ids, steps, k, score="raw")[:1],
            "last": _beams(next_logits, ids, steps, k)[-1:]}


def _unseparated(answers: list[dict[str, torch.Tensor]]) -> set[tuple[str, str]]:
    """Pairs of answers (right or mistaken) that are the same in every case."""
    names = list(answers[0])
    return {(a, b) for i, a in enumerate(names) for b in names[i + 1:]
            if all(torch.equal(ans[a], ans[b]) for ans in answers)}


@exercise("ex10_2", points=3, timeout=60)
class BeamSearchCheck:
    """``beam_search(next_logits, ids, max_new_tokens, num_beams)``: the same best sequence as the reference."""

    names = ("beam_search",)
    reference = ("tutorlib.llm.decoding.beam_search", "tutorlib.llm.decoding.generate")
    hints = ("keep `beams` (n, T) and their `scores` (n,), the total log-probability of each; start with the prompt "
             "alone and a score of 0",
             "each step: logp = log_softmax(next_logits(beams), -1) (n, V); total = (scores[:, None] + logp).reshape(-1); "
             "torch.topk(total, num_beams) gives the new scores and flat indices: beam = flat // V, token = flat % V",
             "after the last step return the best beam, the prompt included: beams[:1] (shape (1, T + max_new_tokens))")

    def inputs(self, gen: torch.Generator) -> dict:
        vocab = 12
        tables = [2.0 * torch.randn(vocab, vocab, generator=gen) for _ in range(2)]
        lm = _table_lm((tables[0], tables[1]))

        def draw(k: int, steps: int) -> dict:
            return {"ids": torch.randint(0, vocab, (1, 3), generator=gen), "steps": steps, "num_beams": k}

        # Prompts where the beams find a better sequence than the greedy one (else a greedy answer would pass),
        # then more until the right answer and each typical mistake differ from one another in some case.
        cases = [draw(1, 5)]
        for k, steps in ((3, 6), (4, 5), (2, 6)):
            for _ in range(40):
                c = draw(k, steps)
                answers = _beam_answers(lm, c)
                if not torch.equal(answers["right"], answers["greedy"]):
                    break
            cases.append(c)
        answers = [_beam_answers(lm, c) for c in cases]
        for _ in range(60):
            left = _unseparated(answers)
            if not left:
                break
            c = draw(3, 6)
            new = _beam_answers(lm, c)
            if any(not torch.equal(new[a], new[b]) for a, b in left):
                cases.append(c)
                answers.append(new)
        return {"tables": tables, "cases": cases}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, lm = learner.function("beam_search"), _table_lm(tuple(inputs["tables"]))
        return [learner.call(fn, lm, c["ids"].to(learner.device), c["steps"], c["num_beams"], mutable=(0,))
                for c in inputs["cases"]]

    def compare(self, inputs: dict, outputs: Any) -> None:
        lm = _table_lm(tuple(inputs["tables"]))
        cases = inputs["cases"]
        for c, out in zip(cases, outputs):
            ids, steps, k = c["ids"], c["steps"], c["num_beams"]
            T = ids.shape[1]
            what = f"beam_search(next_logits, ids={ids.tolist()}, max_new_tokens={steps}, num_beams={k})"
            if isinstance(out, torch.Tensor) and tuple(out.shape) == (1, steps):
                raise CheckFailed(f"{what} returned only the {steps} new tokens: return the prompt followed by them, "
                                  f"shape (1, {T + steps})")
            if isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[0] == k > 1 and out.shape[1] == T + steps:
                raise CheckFailed(f"{what} returned all {k} beams: return only the best one, shape (1, {T + steps})")
            expect_tensor(out, what, shape=(1, T + steps))
        gots = [out.detach().long().cpu() for out in outputs]
        wants = [reference_beam_search(lm, c["ids"], c["steps"], c["num_beams"]) for c in cases]
        if all(torch.equal(g, w) for g, w in zip(gots, wants)):
            return

        def beams(c: dict, **kw: Any) -> torch.Tensor:
            return _beams(lm, c["ids"], c["steps"], c["num_beams"], **kw)

        # A mistake made the same way in every case names itself (one case alone can match several).
        variants = {
            "that is the greedy answer: keep num_beams candidates, ranked by their total log-probability":
                lambda c: _greedy(lm, c["ids"], c["steps"]),
            "rank by the TOTAL log-probability of each candidate: add the beam's score so far to the new token's "
            "log-probability": lambda c: beams(c, accumulate=False)[:1],
            "add log-probabilities (log_softmax), not probabilities: a sequence's probability is the PRODUCT of its "
            "tokens' probabilities": lambda c: beams(c, score="softmax")[:1],
            "turn each beam's logits into log-probabilities with log_softmax before adding: raw logits of different "
            "beams are not on the same scale": lambda c: beams(c, score="raw")[:1],
            "that is one of the final beams but not the best: return the one with the highest total log-probability "
            "(torch.topk sorts best first: beams[:1])": lambda c: beams(c)[-1:],
        }
        alts = {msg: [fn(c) for c in cases] for msg, fn in variants.items()}
        diagnosis = next((msg for msg, alt in alts.items()
                          if all(torch.equal(g, a) for g, a in zip(gots, alt))
                          and any(not torch.equal(a, w) for a, w in zip(alt, wants))), "")
        for i, (c, got, want) in enumerate(zip(cases, gots, wants)):
            if torch.equal(got, want):
                continue
            what = (f"beam_search(next_logits, ids={c['ids'].tolist()}, max_new_tokens={c['steps']}, "
                    f"num_beams={c['num_beams']})")
            hint = diagnosis or next((msg for msg, alt in alts.items()
                                      if torch.equal(got, alt[i]) and not torch.equal(alt[i], want)), "")
            if not hint and any(torch.equal(got, b[None]) for b in beams(c)[1:]):
                hint = next(iter(msg for msg in variants if msg.startswith("that is one of the final beams")))
            raise CheckFailed(f"{what} returned {got.tolist()}, expected {want.tolist()}" + (f" — {hint}" if hint else ""))


# --------------------------------------------------------------------------- ex10_3: the repetition penalty


def _penalised(logits: torch.Tensor, ids: torch.Tensor, penalty: float, how: str) -> torch.Tensor:
    """A typical wrong repetition penalty (for hints)."""
    seen = torch.gather(logits, 1, ids)
    if how == "divide":
        return logits.scatter(1, ids, seen / penalty)
    if how == "multiply":
        return logits.scatter(1, ids, seen * penalty)
    if how == "swapped":
        return logits.scatter(1, ids, torch.where(seen < 0, seen / penalty, seen * penalty))
    if how == "everywhere":
        return torch.where(logits < 0, logits * penalty, logits / penalty)
    out = logits.clone()            # "each occurrence": penalised again for every repeat
    for b in range(ids.shape[0]):
        for j in ids[b].tolist():
            out[b, j] = out[b, j] * penalty if out[b, j] < 0 else out[b, j] / penalty
    return out


@exercise("ex10_3", points=1, timeout=60)
class RepetitionPenaltyCheck:
    """``repetition_penalty(logits, ids, penalty)``: seen tokens' positive logits ÷ penalty, negative × penalty."""

    names = ("repetition_penalty",)
    reference = ("tutorlib.llm.decoding.apply_repetition_penalty",)
    hints = ("only the tokens in ids change: seen = torch.gather(logits, 1, ids) picks their logits, "
             "logits.scatter(1, ids, new_seen) puts them back (a token seen twice is penalised once)",
             "the penalty makes a seen token LESS likely: a positive logit is divided by the penalty, a negative one "
             "multiplied — torch.where(seen < 0, seen * penalty, seen / penalty)")

    def inputs(self, gen: torch.Generator) -> dict:
        cases = []
        for penalty in (1.5, 1.0, 0.8):
            ids = torch.randint(0, 15, (2, 6), generator=gen)
            ids[:, -1] = ids[:, 0]                                  # every row repeats a token
            cases.append({"logits": 3 * torch.randn(2, 15, generator=gen), "ids": ids, "penalty": penalty})
        return {"cases": cases}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, dev = learner.function("repetition_penalty"), learner.device
        return [learner.call(fn, c["logits"].to(dev), c["ids"].to(dev), c["penalty"]) for c in inputs["cases"]]

    def compare(self, inputs: dict, outputs: Any) -> None:
        from tutorlib.llm.decoding import apply_repetition_penalty

        for c, out in zip(inputs["cases"], outputs):
            logits, ids, penalty = c["logits"], c["ids"], c["penalty"]
            what = f"repetition_penalty(logits {tuple(logits.shape)}, ids {tuple(ids.shape)}, penalty={penalty})"
            expect_tensor(out, what, shape=tuple(logits.shape), dtype=logits.dtype, device=self.device)
            out = out.detach().cpu()
            want = apply_repetition_penalty(logits, ids, penalty)
            hint = ""
            tries = {
                "divide": "dividing a negative logit makes it larger (more likely): multiply negative logits by the penalty",
                "multiply": "multiplying a positive logit by a penalty > 1 makes it larger (more likely): divide positive "
                            "logits by the penalty",
                "swapped": "you make seen tokens MORE likely: divide positive logits by the penalty and multiply "
                           "negative ones",
                "everywhere": "penalise only the tokens that appear in ids (gather their logits, scatter them back), "
                              "not the whole vocabulary",
                "each occurrence": "a token that appears several times in ids is penalised once, not once per "
                                   "occurrence: compute the new values from the original logits and scatter them",
            }
            for how, msg in tries.items():
                alt = _penalised(logits, ids, penalty, how)
                if torch.allclose(out, alt, atol=1e-6) and not torch.allclose(alt, want, atol=1e-6):
                    hint = msg
                    break
            expect_close(out, want, what, atol=1e-5, rtol=1e-5, hint=hint)


# --------------------------------------------------------------------------- protocol checks (ex10_4 – ex10_9)


def _as_int_list(x: Any, what: str) -> list[int]:
    """``x`` as a list of Python ints (a list, tuple or 1-D integer tensor), or fail saying what it is."""
    if isinstance(x, torch.Tensor):
        if x.dim() != 1 or x.is_floating_point():
            raise CheckFailed(f"{what} is {describe(x)}: return a list of int token ids")
        return [int(i) for i in x.tolist()]
    if not isinstance(x, (list, tuple)):
        raise CheckFailed(f"{what} is {describe(x)}, expected a list of int token ids")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in x):
        bad = next(i for i in x if not isinstance(i, int) or isinstance(i, bool))
        raise CheckFailed(f"{what} contains {bad!r} ({type(bad).__name__}): token ids must be Python ints")
    return list(x)


@exercise("ex10_4", points=2, timeout=60)
class BPEMergeStepCheck:
    """``bpe_merge_step(ids, new_id) -> (pair, merged)``: the most frequent adjacent pair, merged left to right."""

    names = ("bpe_merge_step",)
    reference = ("tutorlib.llm.bpe.merge_pair", "tutorlib.llm.bpe.pair_counts", "tutorlib.llm.bpe.train_bpe",
                 "tutorlib.llm.bpe.BPETokenizer")
    hints = ("count pairs with zip(ids, ids[1:]); a dict keeps the order pairs were first seen, and max(...) returns "
             "the first of equal counts",
             "merge with a while loop: when ids[i], ids[i + 1] is the pair, append new_id and jump i by 2, else append "
             "ids[i] and step by 1 — so [7, 7, 7] with pair (7, 7) becomes [new_id, 7]")

    def inputs(self, gen: torch.Generator) -> dict:
        cases = [{"ids": [5, 5, 5, 1, 5, 5, 5, 5], "new_id": 256}]                 # overlapping runs
        cases.append({"ids": [3, 4, 1, 2, 1, 2, 3, 4], "new_id": 300})             # a tie: (3, 4) is seen first
        for n, vocab in ((40, 4), (120, 6), (25, 3)):
            ids = torch.randint(0, vocab, (n,), generator=gen).tolist()
            cases.append({"ids": ids, "new_id": 256 + int(torch.randint(0, 50, (1,), generator=gen))})
        return {"cases": cases}

    def call(self, learner: Any, inputs: dict) -> list:
        fn = learner.function("bpe_merge_step")
        return [learner.call(fn, list(c["ids"]), c["new_id"]) for c in inputs["cases"]]

    def compare(self, inputs: dict, outputs: Any) -> None:
        from tutorlib.llm.bpe import merge_pair, pair_counts

        for c, out in zip(inputs["cases"], outputs):
            ids, new_id = c["ids"], c["new_id"]
            what = f"bpe_merge_step({ids if len(ids) <= 10 else str(ids[:8])[:-1] + ', …]'}, {new_id})"
            if not isinstance(out, (list, tuple)) or len(out) != 2:
                raise CheckFailed(f"{what} returned {describe(out)}: return a tuple (pair, merged_ids)")
            pair, merged = out
            if isinstance(pair, torch.Tensor):
                pair = pair.tolist()
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise CheckFailed(f"{what}: the pair is {pair!r}, expected a tuple of two token ids like (5, 5)")
            pair = tuple(int(i) for i in pair)
            counts = pair_counts(ids)
            want_pair = max(counts, key=counts.__getitem__)
            if pair != want_pair:
                hint = ""
                if counts.get(pair) == counts[want_pair]:
                    hint = (f" — it occurs as often ({counts[want_pair]} times), but {want_pair} was seen first: "
                            "break ties by first occurrence (a dict in insertion order and max do that)")
                elif pair in counts:
                    hint = f" ({pair} occurs {counts[pair]} times, {want_pair} {counts[want_pair]} times)"
                    if want_pair[0] == want_pair[1]:
                        hint += ": count every adjacent position, overlapping ones included"
                raise CheckFailed(f"{what} picked the pair {pair}, expected the most frequent one {want_pair}{hint}")
            merged = _as_int_list(merged, f"the merged ids of {what}")
            want = merge_pair(ids, want_pair, new_id)
            if merged != want:
                hint = ""
                if merged == ids:
                    hint = " — nothing was merged: replace each occurrence of the pair by new_id"
                elif len(merged) < len(want):
                    hint = " — a merged pair's tokens cannot be used again: after a match, skip both positions"
                elif len(merged) > len(want) and want_pair[0] == want_pair[1]:
                    hint = " — scan left to right and skip both tokens after a match, so [a, a, a] becomes [new, a]"
                first = next((i for i, (a, b) in enumerate(zip(merged, want)) if a != b), min(len(merged), len(want)))
                raise CheckFailed(f"{what}: the merged ids have {len(merged)} tokens, expected {len(want)}; "
                                  f"first difference at position {first}{hint}")


@exercise("ex10_5", points=1, timeout=60)
class RMSNormCheck:
    """``rms_norm(x, weight, eps)``: ``x / sqrt(mean(x**2, last dim) + eps) * weight``."""

    names = ("rms_norm",)
    reference = ("tutorlib.llm.layers.rms_norm", "tutorlib.llm.layers.RMSNorm", "torch.nn.functional.rms_norm")
    hints = ("the mean of the squares is over the last dimension only: x.pow(2).mean(-1, keepdim=True)",
             "eps goes inside the square root: torch.rsqrt(mean_sq + eps); there is no mean subtraction and no bias")

    def inputs(self, gen: torch.Generator) -> dict:
        return {"cases": [
            {"x": torch.randn(2, 3, 8, generator=gen), "w": 0.5 + torch.rand(8, generator=gen), "eps": 1e-6},
            {"x": 3.0 + 5 * torch.randn(4, 16, generator=gen), "w": torch.rand(16, generator=gen), "eps": 1e-5},
            {"x": 0.1 * torch.randn(3, 6, generator=gen), "w": torch.randn(6, generator=gen), "eps": 0.5},
        ]}

    def call(self, learner: Any, inputs: dict) -> list:
        fn = learner.function("rms_norm")
        return [learner.call(fn, c["x"], c["w"], c["eps"]) for c in inputs["cases"]]

    def compare(self, inputs: dict, outputs: Any) -> None:
        from tutorlib.llm.layers import rms_norm

        for c, out in zip(inputs["cases"], outputs):
            x, w, eps = c["x"], c["w"], c["eps"]
            what = f"rms_norm(x {tuple(x.shape)}, weight ({w.shape[0]},), eps={eps:g})"
            expect_tensor(out, what, shape=tuple(x.shape))
            want = rms_norm(x, w, eps)
            hint = ""
            ms = x.pow(2).mean(-1, keepdim=True)
            centred = x - x.mean(-1, keepdim=True)
            tries = {
                "you divide by the root of the SUM of squares: use the mean over the last dimension":
                    x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps) * w,
                "eps belongs inside the square root: rsqrt(mean(x²) + eps), not 1 / (sqrt(mean(x²)) + eps)":
                    x / (ms.sqrt() + eps) * w,
                "multiply by weight at the end": x * torch.rsqrt(ms + eps),
                "RMSNorm does not subtract the mean (that is LayerNorm)":
                    centred * torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + eps) * w,
            }
            if x.dim() > 1 and x.shape[0] > 1:
                tries["the mean is over the LAST dimension (each token's features), not dimension 0"] = \
                    x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + eps) * w
            for msg, alt in tries.items():
                if alt.shape == out.shape and torch.allclose(out.double(), alt.double(), atol=1e-5, rtol=1e-4) \
                        and not torch.allclose(alt, want, atol=1e-5, rtol=1e-4):
                    hint = msg
                    break
            expect_close(out, want, what, atol=1e-5, rtol=1e-4, hint=hint)


def _rope_ref(x: torch.Tensor, positions: torch.Tensor, theta: float, sign: float = 1.0,
              layout: str = "half", exponent: float = 2.0) -> torch.Tensor:
    """RoPE on x (B, H, T, D) — the right one, or a typical variant (sign, interleaved pairs, frequency exponent)."""
    D = x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float64) * (exponent / 2) / D)
    ang = positions.double()[:, None] * inv[None]                      # (T, D/2)
    cos, sin = ang.cos(), sign * ang.sin()
    xd = x.double()
    if layout == "half":
        x1, x2 = xd[..., : D // 2], xd[..., D // 2:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)
    x1, x2 = xd[..., 0::2], xd[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1).flatten(-2)


@exercise("ex10_6", points=2, timeout=60)
class RoPECheck:
    """``rope(x, positions, theta)``: rotate-half rotary embeddings of queries/keys x (B, H, T, D)."""

    names = ("rope",)
    reference = ("tutorlib.llm.layers.apply_rope", "tutorlib.llm.layers.rope_cos_sin",
                 "tutorlib.llm.layers.rotate_half")
    hints = ("inv_freq = 1 / theta ** (torch.arange(0, D, 2) / D); angle = positions[:, None] * inv_freq[None, :] "
             "(T, D/2); repeat it twice along the last dimension to get (T, D)",
             "rotate_half(x) = cat([-x2, x1]) with x1, x2 the two halves of the last dimension; "
             "the result is x * cos + rotate_half(x) * sin")

    def inputs(self, gen: torch.Generator) -> dict:
        start = int(torch.randint(0, 40, (1,), generator=gen))
        return {"cases": [
            {"x": torch.randn(1, 2, 5, 8, generator=gen), "positions": torch.arange(5), "theta": 10000.0},
            {"x": torch.randn(2, 3, 4, 16, generator=gen), "positions": torch.arange(start, start + 4),
             "theta": 100000.0},
            {"x": torch.randn(1, 1, 3, 4, generator=gen), "positions": torch.tensor([7, 2, 30]), "theta": 500.0},
        ]}

    def call(self, learner: Any, inputs: dict) -> list:
        fn = learner.function("rope")
        return [learner.call(fn, c["x"], c["positions"], c["theta"]) for c in inputs["cases"]]

    def compare(self, inputs: dict, outputs: Any) -> None:
        from tutorlib.llm.layers import apply_rope, rope_cos_sin

        for c, out in zip(inputs["cases"], outputs):
            x, pos, theta = c["x"], c["positions"], c["theta"]
            what = f"rope(x {tuple(x.shape)}, positions={pos.tolist()}, theta={theta:g})"
            expect_tensor(out, what, shape=tuple(x.shape))
            cos, sin = rope_cos_sin(pos, x.shape[-1], theta)
            want = apply_rope(x, cos, sin)
            variants = {
                "you rotate by minus the angle: x * cos + rotate_half(x) * sin with rotate_half(x) = cat([-x2, x1])":
                    _rope_ref(x, pos, theta, sign=-1.0),
                "you rotate adjacent pairs (0, 1), (2, 3), …; this model pairs dimension j with j + D/2 "
                "(the rotate-half layout of Llama in transformers)": _rope_ref(x, pos, theta, layout="interleaved"),
                "the frequencies are theta ** (-2j / D) for pair j: use torch.arange(0, D, 2) / D":
                    _rope_ref(x, pos, theta, exponent=1.0),
                "the angles use the given positions: positions[t] for token t, not t + 1":
                    _rope_ref(x, pos + 1, theta),
                "the angles use the given positions, not 0, 1, 2, …":
                    _rope_ref(x, torch.arange(pos.numel()), theta),
            }
            hint = ""
            for msg, alt in variants.items():
                if torch.allclose(out.double(), alt, atol=1e-4) and not torch.allclose(alt, want.double(), atol=1e-4):
                    hint = msg
                    break
            if not hint and torch.allclose(out.norm(dim=-1), x.norm(dim=-1), atol=1e-4) is False:
                hint = "a rotation keeps each vector's length: check that cos and sin use the same angles"
            expect_close(out, want, what, atol=1e-5, rtol=1e-4, hint=hint)


def _attention_variant(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask: str = "causal",
                       scale: str = "sqrt", group: str = "interleave", axis: int = -1) -> torch.Tensor:
    """Attention in float64 with one typical variation (for hints)."""
    H, Hkv, Tq, Tk, D = q.shape[1], k.shape[1], q.shape[2], k.shape[2], q.shape[-1]
    rep = H // Hkv
    if group == "interleave":
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    else:
        k, v = k.repeat(1, rep, 1, 1), v.repeat(1, rep, 1, 1)
    s = q.double() @ k.double().transpose(-2, -1)
    s = s / {"sqrt": D ** 0.5, "none": 1.0, "d": float(D)}[scale]
    allowed = torch.ones(Tq, Tk, dtype=torch.bool).tril(Tk - Tq)
    if mask == "causal":
        s = s.masked_fill(~allowed, float("-inf"))
    elif mask == "strict":
        s = s.masked_fill(~torch.ones(Tq, Tk, dtype=torch.bool).tril(Tk - Tq - 1), float("-inf"))
    elif mask == "top-left":
        s = s.masked_fill(~torch.ones(Tq, Tk, dtype=torch.bool).tril(), float("-inf"))
    return s.softmax(axis) @ v.double()


def _attention_hint(out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, want: torch.Tensor,
                    extra: dict[str, torch.Tensor] | None = None) -> str:
    variants = dict(extra or {})   # the caller's specific mistakes are named first
    variants |= {
        "no causal mask: token i must not see tokens after it (fill scores with -inf above the diagonal)":
            _attention_variant(q, k, v, mask="none"),
        "the mask hides the token itself: token i may attend to positions 0..i, the diagonal included":
            _attention_variant(q, k, v, mask="strict"),
        "scale the scores by 1 / sqrt(head_dim)": _attention_variant(q, k, v, scale="none"),
        "the scale is 1 / sqrt(head_dim), not 1 / head_dim": _attention_variant(q, k, v, scale="d"),
        "query head h uses key/value head h // (H // H_kv): repeat each KV head in place "
        "(repeat_interleave on dim 1), not the whole block (.repeat)": _attention_variant(q, k, v, group="tile"),
        "the softmax runs over the keys (the last dimension)": _attention_variant(q, k, v, axis=-2),
    }
    for msg, alt in variants.items():
        if alt.shape == out.shape and torch.allclose(out.double(), alt, atol=1e-4, equal_nan=True) \
                and not torch.allclose(alt, want.double(), atol=1e-4):
            return msg
    if torch.isnan(out).any():
        return "NaN in the output: a row of scores is all -inf (is the diagonal masked?)"
    return ""


@exercise("ex10_7", points=3, timeout=60)
class GQAttentionCheck:
    """``gqa_attention(q, k, v)``: causal scaled dot-product attention with grouped key/value heads."""

    names = ("gqa_attention",)
    reference = ("tutorlib.llm.layers.causal_attention", "tutorlib.llm.layers.repeat_kv",
                 "torch.nn.functional.scaled_dot_product_attention")
    hints = ("scores = q @ k.transpose(-2, -1) / sqrt(D), then masked_fill(~torch.ones(T, T).tril().bool(), -inf), "
             "softmax over the last dimension, @ v",
             "grouped-query: query head h uses key/value head h // (H // H_kv): k.repeat_interleave(H // H_kv, dim=1)")

    def inputs(self, gen: torch.Generator) -> dict:
        return {"cases": [
            {"q": torch.randn(1, 4, 5, 8, generator=gen), "k": torch.randn(1, 2, 5, 8, generator=gen),
             "v": torch.randn(1, 2, 5, 8, generator=gen)},
            {"q": torch.randn(2, 6, 7, 4, generator=gen), "k": torch.randn(2, 2, 7, 4, generator=gen),
             "v": torch.randn(2, 2, 7, 4, generator=gen)},
            {"q": 2 * torch.randn(1, 3, 4, 16, generator=gen), "k": torch.randn(1, 3, 4, 16, generator=gen),
             "v": torch.randn(1, 3, 4, 16, generator=gen)},           # one KV head per query head (plain MHA)
        ]}

    def call(self, learner: Any, inputs: dict) -> list:
        fn = learner.function("gqa_attention")
        return [learner.call(fn, c["q"], c["k"], c["v"]) for c in inputs["cases"]]

    def compare(self, inputs: dict, outputs: Any) -> None:
        from tutorlib.llm.layers import causal_attention

        for c, out in zip(inputs["cases"], outputs):
            q, k, v = c["q"], c["k"], c["v"]
            what = f"gqa_attention(q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)})"
            if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
                raise CheckFailed(f"{what} returned a {type(out).__name__}: return only the output tensor (B, H, T, D)")
            expect_tensor(out, what, shape=tuple(q.shape))
            want, _ = causal_attention(q, k, v)
            expect_close(out, want, what, atol=1e-5, rtol=1e-4, hint=_attention_hint(out, q, k, v, want))


@exercise("ex10_8", points=2, timeout=60)
class KVCacheStepCheck:
    """``kv_step(q_new, k_new, v_new, k_cache, v_cache) -> (out, k_cache, v_cache)``: one cached decoding step."""

    names = ("kv_step",)
    reference = ("tutorlib.llm.layers.causal_attention", "tutorlib.llm.layers.repeat_kv",
                 "torch.nn.functional.scaled_dot_product_attention")
    hints = ("append first: k_cache = torch.cat([k_cache, k_new], dim=2) (dim 2 is the time axis of (B, H_kv, T, D)), "
             "same for v; then the new query attends to ALL cached positions",
             "the new token is the last position, so it may see every key: no mask is needed "
             "(a tril mask of shape (1, T) would hide all but the first key)")

    def inputs(self, gen: torch.Generator) -> dict:
        cases = []
        for B, H, Hkv, T, D in ((1, 4, 2, 6, 8), (2, 6, 3, 9, 4), (1, 2, 2, 3, 16)):
            cases.append({"q_new": torch.randn(B, H, 1, D, generator=gen),
                          "k_new": torch.randn(B, Hkv, 1, D, generator=gen),
                          "v_new": torch.randn(B, Hkv, 1, D, generator=gen),
                          "k_cache": torch.randn(B, Hkv, T, D, generator=gen),
                          "v_cache": torch.randn(B, Hkv, T, D, generator=gen)})
        return {"cases": cases}

    def call(self, learner: Any, inputs: dict) -> list:
        fn = learner.function("kv_step")
        return [learner.call(fn, c["q_new"], c["k_new"], c["v_new"], c["k_cache"], c["v_cache"])
                for c in inputs["cases"]]

    def compare(self, inputs: dict, outputs: Any) -> None:
        from tutorlib.llm.layers import causal_attention

        for c, out in zip(inputs["cases"], outputs):
            q, kn, vn, kc, vc = c["q_new"], c["k_new"], c["v_new"], c["k_cache"], c["v_cache"]
            what = f"kv_step(q_new {tuple(q.shape)}, k_new {tuple(kn.shape)}, …, k_cache {tuple(kc.shape)}, …)"
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                raise CheckFailed(f"{what} returned {describe(out)}: return a tuple (out, k_cache, v_cache)")
            o, k_all, v_all = out
            want_k, want_v = torch.cat([kc, kn], 2), torch.cat([vc, vn], 2)
            for got, want, name in ((k_all, want_k, "k_cache"), (v_all, want_v, "v_cache")):
                if isinstance(got, torch.Tensor) and got.shape == kc.shape:
                    raise CheckFailed(f"the returned {name} of {what} still has {kc.shape[2]} positions: append "
                                      "the new token's keys/values (torch.cat along dim 2) and return the longer cache")
                expect_tensor(got, f"the returned {name} of {what}", shape=tuple(want.shape))
                new, old = (kn, kc) if name == "k_cache" else (vn, vc)
                if torch.allclose(got, torch.cat([new, old], 2)) and not torch.allclose(got, want):
                    raise CheckFailed(f"the returned {name} of {what} puts the new token first: append it at the end")
                expect_close(got, want, f"the returned {name} of {what}", atol=0, rtol=0)
            expect_tensor(o, f"the attention output of {what}", shape=tuple(q.shape))
            want_o, _ = causal_attention(q, want_k, want_v)
            extra = {
                "the new query must also see its own key/value: append k_new, v_new to the cache BEFORE attending":
                    _attention_variant(q, kc, vc),
                "a causal mask built as tril() of shape (1, T) hides every key but the first: the new token is the "
                "last position and may see all T keys (no mask needed)":
                    _attention_variant(q, want_k, want_v, mask="top-left"),
            }
            expect_close(o, want_o, f"the attention output of {what}", atol=1e-5, rtol=1e-4,
                         hint=_attention_hint(o, q, want_k, want_v, want_o, extra))


#: SmolLM2-135M's sizes that matter for its KV cache (checked against the bundled model's config by the tests).
SMOLLM2_KV = {"n_layer": 30, "n_kv_head": 3, "head_dim": 64, "bytes_per_number": 4}


@exercise("ex10_9", points=2, timeout=180)
class KVCacheMeasureCheck:
    """``measure_kv_cache(n_tokens) -> dict``: SmolLM2's KV cache after a prefill of n tokens, measured."""

    names = ("measure_kv_cache",)
    reference = ("tutorlib.llm.kv_cache.kv_cache_bytes",)
    hints = ("run `ours(ids, cache=cache)` with a fresh `KVCache()` on n_tokens token ids (any ids will do) and read "
             "cache.nbytes()",
             "bytes_per_token is measured_bytes / n_tokens; the formula is "
             "2 × layers × KV heads × head_dim × 4 bytes")

    def inputs(self, gen: torch.Generator) -> dict:
        return {"n_tokens": int(torch.randint(20, 90, (1,), generator=gen))}

    def call(self, learner: Any, inputs: dict) -> Any:
        fn = learner.function("measure_kv_cache")
        return learner.call(fn, inputs["n_tokens"])

    def compare(self, inputs: dict, outputs: Any) -> None:
        n = inputs["n_tokens"]
        what = f"measure_kv_cache({n})"
        if not isinstance(outputs, dict):
            raise CheckFailed(f"{what} returned {describe(outputs)}: return a dict with the keys "
                              "'measured_bytes' and 'bytes_per_token'")
        for key in ("measured_bytes", "bytes_per_token"):
            if key not in outputs:
                raise CheckFailed(f"{what} has no key {key!r} (it has {sorted(outputs)})")
        s = SMOLLM2_KV
        per_token = 2 * s["n_layer"] * s["n_kv_head"] * s["head_dim"] * s["bytes_per_number"]
        measured = expect_number(outputs["measured_bytes"], f"{what}['measured_bytes']")
        if measured != per_token * n:
            hint = ""
            if measured == per_token * n // 2:
                hint = (": half of it — only the keys (or only the values), or 2-byte numbers: count both, and load "
                        "the model in float32")
            elif measured == per_token * n * 3:
                hint = ": that is one KV head per query head; SmolLM2 has 3 KV heads shared by 9 query heads"
            elif measured in (per_token * (n + 1), per_token * (n - 1)):
                hint = f": the cache should hold exactly the {n} tokens you ran"
            raise CheckFailed(f"{what}['measured_bytes'] is {measured:,}, but the cache of SmolLM2 after {n} "
                              f"tokens holds {per_token * n:,} bytes in float32{hint} — run the model with a KVCache "
                              "and report cache.nbytes(), do not type a number")
        bpt = expect_number(outputs["bytes_per_token"], f"{what}['bytes_per_token']")
        if abs(bpt - per_token) > 1e-6 * per_token:
            raise CheckFailed(f"{what}['bytes_per_token'] is {bpt:g}, expected measured_bytes / n_tokens "
                              f"= {per_token:,}")
