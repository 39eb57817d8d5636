"""The translation section's pieces: the grammar's French is right, the metrics follow their definitions, and both
translators can learn a small set exactly (their losses and greedy decoding agree)."""

from __future__ import annotations

import math

import pytest
import torch

from tutorlib.llm.translate import (LEXICON, DecoderOnlyTranslator, Seq2SeqTranslator, WordVocab, bleu, chrf,
                                    dictionary_translate, parallel_sentences, train_translator, translate)


def test_grammar_agreement_order_and_elision():
    pairs = dict(parallel_sentences(3000, seed=5))
    checks = 0
    for en, fr in pairs.items():
        e, f = en.split(), fr.split()
        if e[:3] == ["the", "white", "cow"]:
            assert f[:3] == ["la", "vache", "blanche"]
            checks += 1
        if e[:2] == ["the", "bird"]:
            assert f[0] == "l'"
            checks += 1
        if e[:3] == ["the", "big", "bird"]:
            assert f[:3] == ["le", "grand", "oiseau"]  # no elision before a consonant
            checks += 1
        if e[:3] == ["two", "red", "horses"]:
            assert f[:3] == ["deux", "chevaux", "rouges"]
            checks += 1
    assert checks >= 4
    assert len(pairs) == 3000  # distinct
    test = parallel_sentences(50, seed=1, exclude=list(pairs.items()))
    assert not set(test) & set(pairs.items())


def test_dictionary_baseline_keeps_english_order():
    assert dictionary_translate("the big white cows see a dog .") == "le grand blanc vaches voient un chien ."
    assert set(LEXICON.values()) >= {"le", "chat", "rouge", "voit", "voient"}


def test_chrf_and_bleu_follow_their_definitions():
    assert chrf(["abc"], ["abc"]) == pytest.approx(100.0)
    # hypothesis "ab", reference "abc": n=1 P=1 R=2/3, n=2 P=1 R=1/2, n>=3 no hypothesis n-grams (skipped in P),
    # reference has one 3-gram (R=0 for n=3), so R is averaged over n=1..3
    p, r = 1.0, (2 / 3 + 1 / 2 + 0) / 3
    assert chrf(["ab"], ["abc"]) == pytest.approx(100 * 5 * p * r / (4 * p + r))
    # BLEU: 4 words, 3 right unigrams, 2 bigrams, 1 trigram, 0 4-grams -> 0 without smoothing
    assert bleu(["a b c x"], ["a b c d"]) == 0.0
    h, ref = "a b c d e", "a b c d f g"
    prec = [4 / 5, 3 / 4, 2 / 3, 1 / 2]
    expected = 100 * math.exp(1 - 6 / 5) * math.exp(sum(map(math.log, prec)) / 4)
    assert bleu([h], [ref]) == pytest.approx(expected)
    with pytest.raises(ValueError, match="one per sentence"):
        bleu(["a"], [])


@pytest.mark.parametrize("kind", [Seq2SeqTranslator, DecoderOnlyTranslator])
def test_each_translator_learns_a_small_set_exactly(kind):
    pairs = parallel_sentences(12, seed=2)
    vocab = WordVocab([s for p in pairs for s in p])
    torch.manual_seed(0)
    model = kind(len(vocab), d_model=48, heads=4, layers=2, ff=96, dropout=0.0)
    losses = train_translator(model, pairs, vocab, epochs=150, lr=3e-3, batch_size=12)
    assert losses[-1] < 0.05
    out = translate(model, [en for en, _ in pairs], vocab)
    assert sum(o == fr for o, (_, fr) in zip(out, pairs)) >= 11


def test_bad_shapes_say_what_to_do():
    with pytest.raises(ValueError, match="add a batch dimension"):
        DecoderOnlyTranslator(10)(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="non-empty"):
        train_translator(Seq2SeqTranslator(10), [], WordVocab(["a"]))


def test_held_out_pairs_are_kept_out_of_training_and_put_in_the_test():
    from tutorlib.llm.translate import HELD_OUT_PAIRS

    train = parallel_sentences(500, seed=0, held_out=HELD_OUT_PAIRS)
    test = parallel_sentences(50, seed=1, held_out=HELD_OUT_PAIRS, unseen=True)
    has = lambda en: any(f"{a} {n}" in en or f"{a} {n}s" in en or f"{a} {n}es" in en for a, n in HELD_OUT_PAIRS)
    assert not any(has(en) for en, _ in train)
    assert all(has(en) for en, _ in test)
