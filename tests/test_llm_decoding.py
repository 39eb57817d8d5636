"""Decoding from scratch == transformers' generate on a tiny GPT2LMHeadModel with the same weights.

Greedy and beam search are compared token for token; temperature, top-k, top-p and repetition
penalty are compared as filtered distributions against transformers' logits processors, and as
sampled tokens under the same seed.
"""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.generation.logits_process import (LogitsProcessorList, RepetitionPenaltyLogitsProcessor,
                                                    TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)

from tutorlib.llm import (apply_repetition_penalty, beam_search, char_tokenizer, filtered_distribution, greedy,
                          sample, to_gpt2, top_k_filter, top_p_filter)
from tutorlib.llm.decoding import generate
from tutorlib.models import ByteTokenizer, GPTConfig, TinyGPT


@pytest.fixture(scope="module")
def hf_model():
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=40, n_positions=64, n_embd=32, n_layer=2, n_head=2, eos_token_id=None,
                     bos_token_id=None, pad_token_id=None)
    m = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # sharper distributions than the 0.02-std init, so decoding choices matter
        for p in m.parameters():
            p.mul_(15)
    return m


PROMPT = torch.tensor([[3, 7, 11, 2]])


def test_greedy_matches_generate(hf_model):
    want = hf_model.generate(PROMPT, max_new_tokens=15, do_sample=False, pad_token_id=0)
    assert torch.equal(greedy(hf_model, PROMPT, 15), want)
    want = hf_model.generate(PROMPT, max_new_tokens=15, do_sample=False, repetition_penalty=1.6, pad_token_id=0)
    assert torch.equal(greedy(hf_model, PROMPT, 15, repetition_penalty=1.6), want)


@pytest.mark.parametrize("num_beams", [2, 3, 5])
def test_beam_search_matches_generate(hf_model, num_beams):
    want = hf_model.generate(PROMPT, max_new_tokens=10, num_beams=num_beams, do_sample=False, pad_token_id=0)
    assert torch.equal(beam_search(hf_model, PROMPT, 10, num_beams=num_beams), want)


def test_beam_search_finds_more_likely_sequences_than_greedy(hf_model):
    def logp(seq):
        with torch.no_grad():
            lp = hf_model(seq).logits[0, :-1].log_softmax(-1)
        return float(lp[torch.arange(PROMPT.shape[1] - 1, seq.shape[1] - 1), seq[0, PROMPT.shape[1]:]].sum())

    assert logp(beam_search(hf_model, PROMPT, 10, num_beams=5)) >= logp(greedy(hf_model, PROMPT, 10)) - 1e-6


@pytest.mark.parametrize("kw", [dict(temperature=0.7), dict(top_k=5), dict(top_p=0.8), dict(repetition_penalty=1.3),
                                dict(temperature=1.3, top_k=10, top_p=0.9, repetition_penalty=1.2)])
def test_filtered_distribution_matches_logits_processors(kw):
    g = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(4, 50, generator=g)
    ids = torch.randint(0, 50, (4, 9), generator=g)
    procs = LogitsProcessorList()
    if kw.get("repetition_penalty"):
        procs.append(RepetitionPenaltyLogitsProcessor(kw["repetition_penalty"]))
    if kw.get("temperature"):
        procs.append(TemperatureLogitsWarper(kw["temperature"]))
    if kw.get("top_k"):
        procs.append(TopKLogitsWarper(kw["top_k"]))
    if kw.get("top_p"):
        procs.append(TopPLogitsWarper(kw["top_p"]))
    want = procs(ids, logits.clone()).softmax(-1)
    got = filtered_distribution(logits, ids, **kw)
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.equal(got == 0, want == 0)


def test_each_filter_matches_its_processor():
    g = torch.Generator().manual_seed(2)
    logits, ids = torch.randn(3, 30, generator=g), torch.randint(0, 30, (3, 5), generator=g)
    for p in (0.05, 0.3, 0.95):
        assert torch.equal(top_p_filter(logits, p), TopPLogitsWarper(p)(ids, logits.clone()))
    for k in (1, 7, 30):
        assert torch.equal(top_k_filter(logits, k), TopKLogitsWarper(k)(ids, logits.clone()))
    assert torch.allclose(apply_repetition_penalty(logits, ids, 1.4),
                          RepetitionPenaltyLogitsProcessor(1.4)(ids, logits.clone()))


@pytest.mark.parametrize("kw", [dict(temperature=0.7), dict(top_k=5), dict(top_p=0.8),
                                dict(temperature=1.3, top_k=10, top_p=0.9, repetition_penalty=1.2)])
def test_sampling_matches_generate_under_the_same_seed(hf_model, kw):
    torch.manual_seed(5)
    want = hf_model.generate(PROMPT, max_new_tokens=15, do_sample=True, pad_token_id=0, **{"top_k": 0, **kw})
    torch.manual_seed(5)
    assert torch.equal(sample(hf_model, PROMPT, 15, **kw), want)


def test_tinygpt_exports_to_gpt2_with_the_same_outputs_and_tokenizer():
    torch.manual_seed(0)
    m = TinyGPT(GPTConfig(block_size=32, n_layer=2, n_head=2, d_model=32)).eval()
    hf = to_gpt2(m)
    tok, hf_tok = ByteTokenizer(), char_tokenizer()
    text = "def add(a, b):\n    return a + b"
    assert hf_tok(text)["input_ids"] == tok.encode(text) and hf_tok.decode(tok.encode(text)) == text
    ids = torch.tensor([tok.encode(text)])
    assert torch.allclose(hf(ids).logits, m(ids), atol=1e-5)
    assert torch.equal(greedy(m, ids[:, :5], 10), hf.generate(ids[:, :5], max_new_tokens=10, do_sample=False,
                                                               eos_token_id=None))


def test_eos_stops_and_pads():
    step = lambda ids: torch.nn.functional.one_hot((ids + 1) % 6, 6).float()  # noqa: E731
    assert greedy(step, torch.tensor([[2]]), 10, eos_id=5).tolist() == [[2, 3, 4, 5]]
    both = greedy(step, torch.tensor([[2], [4]]), 4, eos_id=5)
    assert both.tolist() == [[2, 3, 4, 5], [4, 5, 5, 5]]  # a finished row keeps emitting EOS
    assert beam_search(step, torch.tensor([[2]]), 10, num_beams=2, eos_id=5).tolist() == [[2, 3, 4, 5]]


def test_bad_inputs_raise_clear_errors():
    m = lambda ids: torch.zeros(*ids.shape, 5)  # noqa: E731
    with pytest.raises(ValueError, match="shape \\(B, T\\)"):
        greedy(m, torch.tensor([1, 2]), 3)
    with pytest.raises(ValueError, match="empty"):
        greedy(m, torch.zeros(1, 0, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        sample(m, torch.tensor([[1]]), 3, temperature=0)
    with pytest.raises(ValueError, match="top_p must be in"):
        top_p_filter(torch.zeros(1, 3), 1.5)
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        top_k_filter(torch.zeros(1, 3), 0)
    with pytest.raises(ValueError, match="one prompt at a time"):
        beam_search(m, torch.tensor([[1], [2]]), 3)
    with pytest.raises(ValueError, match="unknown strategy"):
        generate(m, torch.tensor([[1]]), 3, strategy="nucleus")


def test_cached_logits_give_the_uncached_tokens_for_every_strategy():
    from tutorlib.llm import CachedLogits
    from tutorlib.llm.llama import Llama, LlamaConfig

    torch.manual_seed(0)
    m = Llama(LlamaConfig(vocab_size=40, d_model=32, n_layer=2, n_head=4, n_kv_head=2, d_ff=64)).eval()
    p = torch.tensor([[1, 2, 3, 4]])
    assert torch.equal(greedy(CachedLogits(m), p, 12, repetition_penalty=1.2), greedy(m, p, 12, repetition_penalty=1.2))
    fast = CachedLogits(m)
    assert torch.equal(beam_search(fast, p, 10, num_beams=4, eos_id=7), beam_search(m, p, 10, num_beams=4, eos_id=7))
    assert fast.cached_calls >= 5  # the beams were extended from the cache, not recomputed
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(sample(CachedLogits(m), p, 12, top_p=0.8, generator=g1), sample(m, p, 12, top_p=0.8, generator=g2))
    with pytest.raises(TypeError, match="wraps a tutorlib.llm.Llama"):
        CachedLogits(lambda ids: ids)
