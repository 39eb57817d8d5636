"""NER (BIO spans, entity F1, gazetteer, sub-word alignment) and masked-LM pre-training (BERT masking, the compact
vocabulary, the baselines) behave as their definitions say."""

from __future__ import annotations

import pytest
import torch

from tutorlib.models import load_tokenizer
from tutorlib.transfer.mlm import (CompactVocab, MeanPoolClassifier, fit_classifier, mask_tokens, masked_accuracy,
                                   tiny_bert, train_mlm, unigram_accuracy)
from tutorlib.transfer.token_classification import (NER_TAGS, Gazetteer, NerSentence, align_labels, bio_spans,
                                                    entity_f1, ner_collate, ner_sentences)


def test_bio_spans_follow_the_conll_rules():
    assert bio_spans(["B-PER", "I-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-ORG"]) == [
        ("PER", 0, 3), ("LOC", 4, 5), ("LOC", 5, 6), ("ORG", 6, 7)]
    assert bio_spans(["O", "O"]) == []
    with pytest.raises(ValueError, match="not BIO"):
        bio_spans(["B-PER", "X-PER"])


def test_entity_f1_counts_only_exact_entities():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "B-PER"]]  # truncated name, one right place, one right org, one spurious
    r = entity_f1(gold, pred)
    assert r["precision"] == pytest.approx(2 / 4) and r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert r["per_type"]["PER"]["f1"] == 0.0 and r["per_type"]["LOC"]["f1"] == 1.0
    assert entity_f1(gold, gold)["f1"] == 1.0
    with pytest.raises(ValueError, match="one tag per word"):
        entity_f1([["O", "O"]], [["O"]])


def test_test_split_has_unseen_names_and_the_gazetteer_only_knows_seen_ones():
    train, test = ner_sentences("train"), ner_sentences("test")
    names = lambda sents: {" ".join(s.words[a:b]) for s in sents for _, a, b in bio_spans(s.tags)}
    unseen = names([s for s in test if not s.seen])
    assert unseen and not unseen & names(train)
    g = Gazetteer(train)
    seen_test = [s for s in test if s.seen]
    assert entity_f1([list(s.tags) for s in seen_test], [g.tag(s.words) for s in seen_test])["f1"] == 1.0
    unseen_test = [s for s in test if not s.seen]
    assert entity_f1([list(s.tags) for s in unseen_test], [g.tag(s.words) for s in unseen_test])["recall"] < 0.1
    with pytest.raises(ValueError, match="split"):
        ner_sentences("dev")


def test_labels_sit_on_each_words_first_piece():
    tok = load_tokenizer()
    s = NerSentence(("Ask", "Okafor", "today"), ("O", "B-PER", "O"))
    batch = ner_collate(tok)([s])
    pieces = tok.convert_ids_to_tokens(batch["input_ids"][0])
    labels = batch["labels"][0].tolist()
    assert len(pieces) > 5  # "okafor" is split into several pieces
    assert [NER_TAGS[l] for l in labels if l != -100] == ["O", "B-PER", "O"]
    assert labels[0] == labels[-1] == -100  # [CLS] and [SEP]
    assert align_labels([None, 0, 0, 1, None], ["B-LOC", "O"]) == [-100, 3, -100, 0, -100]


def test_bert_masking_proportions_and_specials():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 500, (400, 64))
    ids[:, 0], ids[:, -1] = CompactVocab.CLS, CompactVocab.SEP
    inputs, labels = mask_tokens(ids, CompactVocab.MASK, 500, special_ids=(0, 1, 2, 3), generator=g)
    chosen = labels != -100
    assert not chosen[:, 0].any() and not chosen[:, -1].any()           # specials never chosen
    assert torch.equal(labels[chosen], ids[chosen])                     # labels are the originals
    assert torch.equal(inputs[~chosen], ids[~chosen])                   # the rest untouched
    share = chosen.float().sum() / (ids.numel() - 2 * len(ids))
    assert share == pytest.approx(0.15, abs=0.01)
    masked = (inputs[chosen] == CompactVocab.MASK).float().mean()
    kept = (inputs[chosen] == ids[chosen]).float().mean()               # 10 % unchanged (+ random hits)
    assert masked == pytest.approx(0.8, abs=0.02) and kept == pytest.approx(0.1, abs=0.02)
    assert (inputs[chosen] >= 4).logical_or(inputs[chosen] == CompactVocab.MASK).all()  # random tokens are not specials
    with pytest.raises(ValueError, match="add a batch dimension"):
        mask_tokens(ids[0], 1, 500)


def test_compact_vocab_round_trip_and_unigram_baseline():
    tok = load_tokenizer()
    texts = ["the room was clean", "the staff was rude", "the food"]
    v = CompactVocab(tok, texts)
    assert v.counts.argmax() == v.to_compact[tok.convert_tokens_to_ids("the")]
    assert v.to_tokens(v.encode(["the staff was clean"])[0]) == ["[CLS]", "the", "staff", "was", "clean", "[SEP]"]
    ids = v.encode(texts * 40)  # one batch of unigram_accuracy (128 rows), so the masking below is the same
    # the unigram baseline is right exactly where the masked token is "the"
    _, labels = mask_tokens(ids, CompactVocab.MASK, len(v), generator=torch.Generator().manual_seed(1))
    chosen = labels != -100
    expected = (labels[chosen] == v.counts.argmax()).float().mean().item()
    assert unigram_accuracy(v.counts, ids) == pytest.approx(expected)


def test_mlm_learns_a_deterministic_pattern_and_the_encoder_feeds_a_classifier():
    torch.manual_seed(0)
    m = tiny_bert(12, hidden=32, layers=1, heads=2, intermediate=64)
    ids = torch.tensor([[2, 5, 6, 7, 8, 9, 10, 11, 3]] * 64)  # every token is predictable from its neighbours
    before = masked_accuracy(m, ids)
    train_mlm(m, ids, epochs=30, lr=3e-3, batch_size=16)
    assert masked_accuracy(m, ids) > max(0.9, before)
    clf = MeanPoolClassifier(m.bert, 2)
    with pytest.raises(ValueError, match="one label per row"):
        fit_classifier(clf, ids[:4], [0, 1])
