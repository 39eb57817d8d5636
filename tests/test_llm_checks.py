"""The LLM lessons' (10–12) exercise checks: right answers pass, stubs are not attempted, typical mistakes fail with a hint."""

from __future__ import annotations

import torch

from tutorlib.llm.prompting import few_shot_messages
from tutorlib.llm import apply_repetition_penalty, beam_search as ref_beam, top_p_filter
from tutorlib.grading.registry import run_check
from mutants_table import own

# The learner's copies: ex10_1-3 and ex11_1 flag the library's own functions (lesson 12's checks: test_llm_checks_12.py).
few_shot_messages = own(few_shot_messages)
top_p_filter, ref_beam, apply_repetition_penalty = own(top_p_filter), own(ref_beam), own(apply_repetition_penalty)


def stub(*args, **kwargs):
    raise NotImplementedError("write your answer here")


RIGHT = {
    "top_p_filter": top_p_filter,
    "beam_search": lambda f, ids, n, k: ref_beam(f, ids, n, num_beams=k),
    "repetition_penalty": apply_repetition_penalty,
    "few_shot_messages": lambda q, shots, system: few_shot_messages(q, shots, system=system),
}
IDS = {"ex10_1": "top_p_filter", "ex10_2": "beam_search", "ex10_3": "repetition_penalty",
       "ex11_1": "few_shot_messages"}


def test_reference_answers_pass_and_stubs_are_not_attempted():
    for ex, name in IDS.items():
        assert run_check(ex, {name: RIGHT[name]}).status == "pass", ex
        assert run_check(ex, {name: stub}).status == "not_attempted", ex
        assert run_check(ex, {}).status == "fail", ex


def _fails(ex, name, fn, *words):
    res = run_check(ex, {name: fn})
    assert res.status == "fail", (ex, res)
    for w in words:
        assert w in res.message, (ex, res.message)


def test_typical_mistakes_are_explained():
    def top_p_one_too_many(logits, p):
        s, order = torch.sort(logits, descending=True)
        c = s.softmax(-1).cumsum(-1)
        remove = torch.zeros_like(c, dtype=torch.bool)
        remove[..., 1:] = c[..., :-1] > p  # keeps the token after the nucleus too
        remove[..., 1:] &= (c[..., :-1] - s.softmax(-1)[..., :-1]) >= p
        return logits.masked_fill(torch.zeros_like(remove).scatter(-1, order, remove), float("-inf"))
    _fails("ex10_1", "top_p_filter", top_p_one_too_many, "too many")

    def greedy_only(f, ids, n, k):
        for _ in range(n):
            ids = torch.cat([ids, f(ids).argmax(-1, keepdim=True)], 1)
        return ids
    _fails("ex10_2", "beam_search", greedy_only, "greedy")

    def divide_all(logits, ids, penalty):
        return logits.scatter(1, ids, torch.gather(logits, 1, ids) / penalty)
    _fails("ex10_3", "repetition_penalty", divide_all, "multiply negative logits")

    _fails("ex11_1", "few_shot_messages", lambda q, shots, system: [{"role": "user", "content": q}], "roles")


# --------------------------------------------------------------------------- lesson 10's protocol checks (ex10_4–9)

import math  # noqa: E402

from tutorlib.grading.checks.ex10 import SMOLLM2_KV  # noqa: E402
from tutorlib.llm import layers  # noqa: E402
from tutorlib.llm.bpe import merge_pair, pair_counts  # noqa: E402


def merge_step(ids, new_id, tie="first", skip=True):
    counts = {}
    for p in zip(ids, ids[1:]):
        counts[p] = counts.get(p, 0) + 1
    pair = max(counts, key=counts.get) if tie == "first" else max(sorted(counts), key=counts.get)
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2 if skip else 1
        else:
            out.append(ids[i])
            i += 1
    return pair, out


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, positions, theta, sign=1.0, interleaved=False, shift=0):
    D = x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, D, 2).float() / D)
    ang = (positions.float() + shift)[:, None] * inv[None]
    cos, sin = ang.cos(), sign * ang.sin()
    if interleaved:
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1).flatten(-2)
    cos, sin = torch.cat([cos, cos], -1), torch.cat([sin, sin], -1)
    half = D // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


def attention(q, k, v, mask="causal", group="interleave", scale=True):
    rep = q.shape[1] // k.shape[1]
    k, v = (k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)) if group == "interleave" else \
        (k.repeat(1, rep, 1, 1), v.repeat(1, rep, 1, 1))
    s = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)
    Tq, Tk = s.shape[-2:]
    if mask == "causal":
        s = s.masked_fill(~torch.ones(Tq, Tk, dtype=torch.bool).tril(Tk - Tq), float("-inf"))
    elif mask == "top-left":
        s = s.masked_fill(~torch.ones(Tq, Tk, dtype=torch.bool).tril(), float("-inf"))
    return s.softmax(-1) @ v


def kv_step(q, kn, vn, kc, vc, order="append-first", mask="none", dim=2):
    k_all, v_all = torch.cat([kc, kn], dim), torch.cat([vc, vn], dim)
    if order == "attend-first":
        return attention(q, kc, vc, mask="none"), k_all, v_all
    return attention(q, k_all, v_all, mask=mask), k_all, v_all


PER_TOKEN = 2 * SMOLLM2_KV["n_layer"] * SMOLLM2_KV["n_kv_head"] * SMOLLM2_KV["head_dim"] * 4
NEW = {
    "ex10_4": ("bpe_merge_step", merge_step),
    "ex10_5": ("rms_norm", rms),
    "ex10_6": ("rope", rope),
    "ex10_7": ("gqa_attention", attention),
    "ex10_8": ("kv_step", kv_step),
    "ex10_9": ("measure_kv_cache", lambda n: {"measured_bytes": PER_TOKEN * n, "bytes_per_token": PER_TOKEN}),
}


def test_lesson_10_new_checks_pass_right_answers_and_see_stubs():
    for ex, (name, fn) in NEW.items():
        res = run_check(ex, {name: fn})
        assert res.status == "pass", (ex, res.message)
        assert run_check(ex, {name: stub}).status == "not_attempted", ex
        assert "not defined" in run_check(ex, {}).message, ex


def uses_library(ids, new_id):   # module level: the library names are globals, as in a notebook
    counts = pair_counts(ids)
    pair = max(counts, key=counts.get)
    return pair, merge_pair(ids, pair, new_id)


def test_lesson_10_new_checks_flag_the_library_versions():
    _fails("ex10_4", "bpe_merge_step", uses_library, "library's own implementation")
    _fails("ex10_5", "rms_norm", layers.rms_norm, "library's own implementation")
    _fails("ex10_6", "rope", lambda x, p, t: layers.apply_rope(x, *layers.rope_cos_sin(p, x.shape[-1], t)),
           "library's own implementation")
    _fails("ex10_7", "gqa_attention", lambda q, k, v: layers.causal_attention(q, k, v)[0], "library's own")


def test_lesson_10_bpe_mistakes():
    _fails("ex10_4", "bpe_merge_step", lambda ids, n: merge_step(ids, n, tie="sorted"), "seen first")
    _fails("ex10_4", "bpe_merge_step", lambda ids, n: merge_step(ids, n, skip=False), "skip both")

    def pairs_by_twos(ids, new_id):   # counts only non-overlapping positions 0-1, 2-3, …
        counts = {}
        for p in zip(ids[::2], ids[1::2]):
            counts[p] = counts.get(p, 0) + 1
        pair = max(counts, key=counts.get)
        return pair, merge_step(ids, new_id)[1]
    _fails("ex10_4", "bpe_merge_step", pairs_by_twos, "expected the most frequent one")

    def pops_input(ids, new_id):
        pair, out = merge_step(ids, new_id)
        ids.clear()
        return pair, out
    _fails("ex10_4", "bpe_merge_step", pops_input, "in place")
    _fails("ex10_4", "bpe_merge_step", lambda ids, n: (merge_step(ids, n)[0], ids), "nothing was merged")


def test_lesson_10_rms_norm_mistakes():
    _fails("ex10_5", "rms_norm", lambda x, w, e: x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + e) * w, "SUM")
    _fails("ex10_5", "rms_norm", lambda x, w, e: x / (x.pow(2).mean(-1, keepdim=True).sqrt() + e) * w,
           "inside the square root")
    _fails("ex10_5", "rms_norm", lambda x, w, e: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + e), "weight")
    _fails("ex10_5", "rms_norm", lambda x, w, e: x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + e) * w,
           "LAST dimension")

    def layer_norm(x, w, e):
        c = x - x.mean(-1, keepdim=True)
        return c * torch.rsqrt(c.pow(2).mean(-1, keepdim=True) + e) * w
    _fails("ex10_5", "rms_norm", layer_norm, "LayerNorm")

    def in_place(x, w, e):
        x.mul_(torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + e))
        return x * w
    _fails("ex10_5", "rms_norm", in_place, "in place")


def test_lesson_10_rope_mistakes():
    _fails("ex10_6", "rope", lambda x, p, t: rope(x, p, t, sign=-1.0), "minus the angle")
    _fails("ex10_6", "rope", lambda x, p, t: rope(x, p, t, interleaved=True), "rotate-half")
    _fails("ex10_6", "rope", lambda x, p, t: rope(x, p, t, shift=1), "not t + 1")
    _fails("ex10_6", "rope", lambda x, p, t: rope(x, torch.arange(x.shape[2]), t), "not 0, 1, 2")

    def wrong_freq(x, p, t):
        D = x.shape[-1]
        inv = 1.0 / t ** (torch.arange(0, D // 2).float() / D)
        ang = p.float()[:, None] * inv[None]
        cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
        return x * cos + torch.cat([-x[..., D // 2:], x[..., :D // 2]], -1) * sin
    _fails("ex10_6", "rope", wrong_freq, "theta ** (-2j / D)")


def test_lesson_10_attention_mistakes():
    _fails("ex10_7", "gqa_attention", lambda q, k, v: attention(q, k, v, mask="none"), "no causal mask")
    _fails("ex10_7", "gqa_attention", lambda q, k, v: attention(q, k, v, group="tile"), "repeat_interleave")
    _fails("ex10_7", "gqa_attention", lambda q, k, v: attention(q, k, v, scale=False), "1 / sqrt(head_dim)")

    def strict(q, k, v):
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        T = s.shape[-1]
        return s.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(-1), float("-inf")).softmax(-1) @ v
    _fails("ex10_7", "gqa_attention", strict, "diagonal")
    _fails("ex10_7", "gqa_attention", lambda q, k, v: (attention(q, k, v), None), "only the output tensor")


def test_lesson_10_kv_step_mistakes():
    _fails("ex10_8", "kv_step", lambda *a: kv_step(*a, order="attend-first"), "BEFORE attending")
    _fails("ex10_8", "kv_step", lambda *a: kv_step(*a, mask="top-left"), "hides every key but the first")
    _fails("ex10_8", "kv_step", lambda q, kn, vn, kc, vc: (attention(q, torch.cat([kc, kn], 2), torch.cat([vc, vn], 2),
                                                                     mask="none"), kc, vc), "still has")
    _fails("ex10_8", "kv_step", lambda *a: (kv_step(*a)[0][:, :, 0],) + kv_step(*a)[1:], "expected (1, 4, 1, 8)")
    _fails("ex10_8", "kv_step", lambda q, kn, vn, kc, vc: (
        attention(q, torch.cat([kn, kc], 2), torch.cat([vn, vc], 2), mask="none"),
        torch.cat([kn, kc], 2), torch.cat([vn, vc], 2)), "first")


def test_lesson_10_measured_kv_cache_must_be_measured():
    _fails("ex10_9", "measure_kv_cache", lambda n: {"measured_bytes": 1_000_000, "bytes_per_token": 1_000_000 / n},
           "do not type a number")
    _fails("ex10_9", "measure_kv_cache",
           lambda n: {"measured_bytes": PER_TOKEN * n // 2, "bytes_per_token": PER_TOKEN / 2}, "only the keys")
    _fails("ex10_9", "measure_kv_cache",
           lambda n: {"measured_bytes": 3 * PER_TOKEN * n, "bytes_per_token": 3 * PER_TOKEN}, "3 KV heads")
    _fails("ex10_9", "measure_kv_cache", lambda n: {"measured_bytes": PER_TOKEN * n, "bytes_per_token": PER_TOKEN * 2},
           "bytes_per_token")
    _fails("ex10_9", "measure_kv_cache", lambda n: PER_TOKEN * n, "return a dict")


def test_lesson_10_kv_sizes_are_those_of_the_bundled_model():
    import json

    from tutorlib.models.llm import llm_cache_status
    status = llm_cache_status()
    if not status["cached"]:
        import pytest
        pytest.skip("the bundled LLM has not been converted yet (the lesson's test converts it)")
    cfg = json.loads((__import__("pathlib").Path(status["cache"]) / "config.json").read_text())
    assert (cfg["num_hidden_layers"], cfg["num_key_value_heads"], cfg.get("head_dim") or
            cfg["hidden_size"] // cfg["num_attention_heads"]) == (SMOLLM2_KV["n_layer"], SMOLLM2_KV["n_kv_head"],
                                                                 SMOLLM2_KV["head_dim"])
