"""Byte-level BPE from scratch, the byte-level ByteTokenizer, bits per byte (tutorlib.llm.bpe, models, evaluate)."""

from __future__ import annotations

import math

import pytest
import torch

from tutorlib.data import code_corpus
from tutorlib.llm import (BPETokenizer, bits_per_byte, char_tokenizer, merge_pair, pair_counts, text_bits_per_byte,
                          text_nll, train_bpe)
from tutorlib.models import ByteTokenizer, GPTConfig, TinyGPT

TEXTS = ["def add(a, b):\n    return a + b\n", "机器学习很有趣。", "emoji 🙂🚀 and ZWJ 👩‍💻",
         "Crème brûlée, naïve café",
         "mixed: x=1 # 注释 🙂 ñ\t\r\n  end", ""]


@pytest.fixture(scope="module")
def trained() -> BPETokenizer:
    return BPETokenizer.train(code_corpus(20_000), vocab_size=256 + 100)


def test_pair_counts_and_merge_pair():
    assert pair_counts([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert pair_counts([7]) == {}
    assert merge_pair([1, 1, 1], (1, 1), 9) == [9, 1]
    assert merge_pair([1, 1, 1, 1], (1, 1), 9) == [9, 9]
    assert merge_pair([1, 2, 3, 1, 2], (1, 2), 9) == [9, 3, 9]
    assert merge_pair([2, 1], (1, 2), 9) == [2, 1]
    assert merge_pair([], (1, 2), 9) == []


def test_training_learns_the_most_frequent_pair_first():
    tok = train_bpe("aaab aaab xy", vocab_size=258)
    assert list(tok.merges)[0] == (97, 97) and tok.vocab[256] == b"aa"       # "aa": 4 times, "ab": 2
    tok = BPETokenizer.train("hug hug hug pug pun", vocab_size=257)
    assert list(tok.merges) == [(117, 103)] and tok.vocab[256] == b"ug"         # "ug": 4 times


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip_any_unicode(trained, text):
    assert trained.decode(trained.encode(text)) == text
    assert BPETokenizer().decode(BPETokenizer().encode(text)) == text


def test_trained_tokenizer_compresses_its_training_text(trained):
    text = code_corpus(20_000)
    ids = trained.encode(text)
    assert len(ids) < 0.75 * len(text.encode("utf-8"))
    assert trained.vocab_size == 356 and len(trained.merges) == 100
    assert all(len(trained.vocab[i]) >= 2 for i in range(256, 356))
    strings = trained.token_strings(ids[:50])
    assert "".join(strings) == trained.decode(ids[:50])
    zh = BPETokenizer.train("机器学习 " * 50, vocab_size=256 + 12)
    assert len(zh.encode("机器学习")) == 1                               # merges inside and across UTF-8 characters


def test_rebuilt_from_merges_encodes_the_same(trained):
    again = BPETokenizer(trained.merges)
    text = code_corpus(2_000)
    assert again.encode(text) == trained.encode(text)


def test_bpe_bad_inputs():
    with pytest.raises(ValueError, match="at least 256"):
        BPETokenizer.train("abc", vocab_size=100)
    with pytest.raises(ValueError, match="non-empty"):
        BPETokenizer.train("", vocab_size=300)
    with pytest.raises(ValueError, match="unknown token id"):
        BPETokenizer().decode([300])
    with pytest.raises(TypeError, match="str"):
        BPETokenizer().encode(b"bytes")


@pytest.mark.parametrize("text", TEXTS)
def test_byte_tokenizer_round_trips_unicode(text):
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert ids == list(text.encode("utf-8")) and all(0 <= i < tok.vocab_size == 256 for i in ids)
    assert tok.decode(ids) == text and tok.decode(torch.tensor(ids, dtype=torch.long)) == text
    assert char_tokenizer()(text)["input_ids"] == ids                    # the Hugging Face twin agrees


def test_byte_tokenizer_partial_sequence_and_tiny_gpt():
    tok = ByteTokenizer()
    assert tok.decode(tok.encode("é")[:1]) == "\ufffd"
    with pytest.raises(ValueError, match="0, 256"):
        tok.decode([300])
    model = TinyGPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, d_model=16))
    assert model(torch.tensor([tok.encode("你好 🙂")])).shape == (1, 11, 256)


def test_bits_per_byte_of_a_uniform_model_is_log2_vocab_per_token():
    text = "def f(x):\n    return x * 2\n" * 10
    uniform = lambda x: torch.zeros(*x.shape, 256)  # noqa: E731
    assert text_bits_per_byte(uniform, ByteTokenizer(), text, context=16) == pytest.approx(8.0)
    assert bits_per_byte(math.log(2) * 30, 10) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="positive"):
        bits_per_byte(1.0, 0)


def test_sliding_window_scores_every_token_once_and_matches_one_window():
    torch.manual_seed(0)
    model = TinyGPT(GPTConfig(block_size=64, n_layer=1, n_head=2, d_model=16)).eval()
    ids = ByteTokenizer().encode(code_corpus(200))[:60]
    one, n1 = text_nll(model, ids, context=64)                         # fits: a single window
    assert n1 == 59
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids]))[0, :-1], -1)
    assert one == pytest.approx(-logp.gather(-1, torch.tensor(ids[1:])[:, None]).sum().item(), rel=1e-5)
    slid, n2 = text_nll(model, ids, context=16, stride=5)
    assert n2 == 59 and slid != one                                    # shorter history changes the scores
    with pytest.raises(ValueError, match="stride"):
        text_nll(model, ids, context=16, stride=16)
