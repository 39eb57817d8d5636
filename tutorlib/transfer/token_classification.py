"""Named-entity recognition as token classification: BIO tags, entity-level F1, a gazetteer baseline and a
MiniLM tagger.

Information extraction ("pull the people, places and companies out of a message") is a *token*
classification task: every word gets a tag. BIO tags mark where an entity begins (``B-PER``), continues
(``I-PER``) or that a word is outside any entity (``O``). The score that matters is **entity-level F1**
(as in CoNLL-2003 and ``seqeval``): an entity counts as found only when its type and both its ends are
right. The data is written for the course (:func:`ner_sentences`): customer-service sentences built
from templates, whose test split holds sentences with names *never seen in training* next to ones with
seen names — where a list of known names (:class:`Gazetteer`) cannot help and context must.

>>> bio_spans(["B-PER", "I-PER", "O", "B-LOC"])
[('PER', 0, 2), ('LOC', 3, 4)]
>>> round(entity_f1([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])["f1"], 2)
0.0
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from tutorlib.train import Trainer

__all__ = ["NER_TAGS", "NerSentence", "ner_sentences", "bio_spans", "entity_f1", "Gazetteer", "TokenClassifier",
           "align_labels", "ner_collate", "train_tagger", "predict_tags"]

NER_TAGS: tuple[str, ...] = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")

# Entity pools written for the course. "seen" names appear in training sentences; "unseen" ones only in the
# test split's second half. "Jordan" and "Georgia" are both a person's first name and a place.
_PEOPLE = {
    "seen": ["Maria Lopez", "Tom Becker", "Aisha Khan", "Li Wei", "Sofia Rossi", "James Carter", "Emma Dubois",
             "Yuki Tanaka", "Omar Haddad", "Anna Novak", "Jordan Miller", "Lucas Silva", "Priya Nair", "Ben Foster"],
    "unseen": ["Clara Jensen", "Mateo Garcia", "Hana Sato", "Victor Petrov", "Grace Okafor", "Georgia Evans",
               "Daniel Kim", "Leila Farah"],
}
_PLACES = {
    "seen": ["Paris", "Berlin", "New York", "Madrid", "Tokyo", "Cairo", "Toronto", "Lisbon", "Jordan", "Oslo",
             "San Diego", "Rome", "Dublin", "Nairobi"],
    "unseen": ["Vienna", "Lima", "Georgia", "Seoul", "Cape Town", "Prague", "Hanoi", "Buenos Aires"],
}
_ORGS = {
    "seen": ["Air France", "Northwind Bank", "Bluebird Hotels", "Apex Mobile", "Delta Couriers", "Sunrise Foods",
             "Orbit Software", "Harbor Clinic", "Maple Books", "Vertex Energy"],
    "unseen": ["Crescent Airlines", "Silverline Telecom", "Redwood Pharmacy", "Nimbus Cloud", "Atlas Rail",
               "Coral Bay Resort"],
}
_TEMPLATES = (
    "{PER} booked a room at {ORG} in {LOC} .",
    "the staff at {ORG} told {PER} to call back tomorrow .",
    "I flew from {LOC} to {LOC} with {ORG} and lost my bag .",
    "{PER} from {ORG} fixed my laptop in ten minutes .",
    "our guide {PER} showed us around {LOC} for a whole day .",
    "delivery to {LOC} took two weeks , said {PER} .",
    "{ORG} opened a new store in {LOC} last month .",
    "my sister {PER} works for {ORG} now .",
    "we met {PER} and {PER} at the airport in {LOC} .",
    "the phone I bought from {ORG} stopped working after a week .",
    "please send the refund to {PER} , not to {PER} .",
    "the hotel near {LOC} was clean but {ORG} charged us twice .",
    "ask for {PER} if you visit the {ORG} office in {LOC} .",
    "{PER} said the train to {LOC} was late again .",
)


@dataclass(frozen=True)
class NerSentence:
    """One tagged sentence: ``words`` and their BIO ``tags``; ``seen`` says whether all its names occur in training."""

    words: tuple[str, ...]
    tags: tuple[str, ...]
    seen: bool = True


def _fill(template: str, rng: random.Random, pools: str) -> NerSentence:
    words: list[str] = []
    tags: list[str] = []
    for piece in template.split():
        kind = {"{PER}": ("PER", _PEOPLE), "{LOC}": ("LOC", _PLACES), "{ORG}": ("ORG", _ORGS)}.get(piece)
        if kind is None:
            words.append(piece)
            tags.append("O")
            continue
        label, table = kind
        for i, w in enumerate(rng.choice(table[pools]).split()):
            words.append(w)
            tags.append(("B-" if i == 0 else "I-") + label)
    return NerSentence(tuple(words), tuple(tags), pools == "seen")


def ner_sentences(split: str = "train", n: int | None = None, seed: int = 0) -> list[NerSentence]:
    """The course's tagged sentences: ``split`` 'train' or 'val' (seen names only) or 'test' (half with names
    never seen in training); ``n`` sentences (default 400 train, 120 val, 240 test).

    >>> s = ner_sentences("test", n=4)[0]
    >>> len(s.words) == len(s.tags), set(s.tags) <= set(NER_TAGS)
    (True, True)
    >>> sum(not s.seen for s in ner_sentences("test"))
    120
    """
    sizes = {"train": 400, "val": 120, "test": 240}
    if split not in sizes:
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    n = sizes[split] if n is None else n
    rng = random.Random(f"ner-{split}-{seed}")
    out = []
    for i in range(n):
        pools = "unseen" if split == "test" and i % 2 == 1 else "seen"
        out.append(_fill(rng.choice(_TEMPLATES), rng, pools))
    return out


def bio_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The entities in one BIO tag sequence as ``(type, start, end)`` (end exclusive). An ``I-X`` that does not
    continue an ``X`` entity starts a new one (the CoNLL evaluation script's rule).

    >>> bio_spans(["O", "I-ORG", "I-ORG", "B-ORG", "I-LOC"])
    [('ORG', 1, 3), ('ORG', 3, 4), ('LOC', 4, 5)]
    """
    spans: list[tuple[str, int, int]] = []
    kind, start = None, 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, label = tag.partition("-")
        if prefix not in ("B", "I", "O") or (prefix != "O" and not label):
            raise ValueError(f"tag {tag!r} at position {i} is not BIO: use 'O', 'B-TYPE' or 'I-TYPE'")
        continues = prefix == "I" and label == kind
        if kind is not None and not continues:
            spans.append((kind, start, i))
            kind = None
        if prefix == "B" or (prefix == "I" and not continues):
            kind, start = label, i
    return spans


def entity_f1(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Entity-level precision, recall and F1 (exact type and boundaries), overall and per type.

    >>> r = entity_f1([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "B-ORG"]])
    >>> r["precision"], r["recall"], r["per_type"]["PER"]["f1"]
    (0.5, 0.5, 1.0)
    """
    if len(gold) != len(predicted):
        raise ValueError(f"got {len(gold)} gold and {len(predicted)} predicted sentences: pass one prediction per sentence")
    true: set[tuple] = set()
    pred: set[tuple] = set()
    for k, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise ValueError(f"sentence {k}: {len(g)} gold tags but {len(p)} predicted: predict one tag per word")
        true |= {(k, *s) for s in bio_spans(g)}
        pred |= {(k, *s) for s in bio_spans(p)}

    def prf(t: set, q: set) -> dict[str, float]:
        hit = len(t & q)
        precision = hit / len(q) if q else 0.0
        recall = hit / len(t) if t else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1, "support": len(t)}

    types = sorted({s[1] for s in true | pred})
    out: dict[str, Any] = prf(true, pred)
    out["per_type"] = {t: prf({s for s in true if s[1] == t}, {s for s in pred if s[1] == t}) for t in types}
    return out


class Gazetteer:
    """The baseline: a list of the entity strings seen in training, matched longest-first (case-insensitive);
    a string seen with several types takes its most frequent one.

    >>> g = Gazetteer([NerSentence(("Tom", "Becker", "left"), ("B-PER", "I-PER", "O"))])
    >>> g.tag(["tom", "becker", "met", "Tom"])
    ['B-PER', 'I-PER', 'O', 'O']
    """

    def __init__(self, sentences: Sequence[NerSentence]) -> None:
        counts: dict[tuple[str, ...], Counter] = {}
        for s in sentences:
            for kind, a, b in bio_spans(s.tags):
                key = tuple(w.lower() for w in s.words[a:b])
                counts.setdefault(key, Counter())[kind] += 1
        self.entries = {k: c.most_common(1)[0][0] for k, c in counts.items()}
        self.longest = max((len(k) for k in self.entries), default=0)

    def tag(self, words: Sequence[str]) -> list[str]:
        """BIO tags for ``words``: every longest known entity string found, left to right."""
        low = [w.lower() for w in words]
        tags = ["O"] * len(words)
        i = 0
        while i < len(words):
            for n in range(min(self.longest, len(words) - i), 0, -1):
                kind = self.entries.get(tuple(low[i:i + n]))
                if kind:
                    tags[i:i + n] = ["B-" + kind] + ["I-" + kind] * (n - 1)
                    i += n
                    break
            else:
                i += 1
        return tags


class TokenClassifier(nn.Module):
    """A pretrained encoder with a linear layer over each token's last hidden state (one logit per tag).

    >>> from transformers import BertConfig, BertModel
    >>> enc = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
    ...                            intermediate_size=32))
    >>> TokenClassifier(enc, 7)(torch.tensor([[2, 5, 3]])).shape
    torch.Size([1, 3, 7])
    """

    def __init__(self, encoder: nn.Module, num_labels: int = len(NER_TAGS), dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        if input_ids.dim() != 2:
            raise ValueError(f"expected input_ids of shape (B, T), got {tuple(input_ids.shape)}: add a batch dimension")
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(self.dropout(hidden))


def align_labels(word_ids: Sequence[int | None], tags: Sequence[str]) -> list[int]:
    """One label id per sub-word token: the word's tag on its first piece, -100 (ignored by the loss) on the
    other pieces and on special tokens.

    >>> align_labels([None, 0, 1, 1, None], ["B-PER", "O"])
    [-100, 1, 0, -100, -100]
    """
    index = {t: i for i, t in enumerate(NER_TAGS)}
    out, previous = [], None
    for w in word_ids:
        out.append(-100 if w is None or w == previous else index[tags[w]])
        previous = w
    return out


def ner_collate(tokenizer: Any, max_length: int = 64):
    """A collate function turning :class:`NerSentence` items into ``input_ids``, ``attention_mask``, ``labels``
    and the ``word_ids`` that map predictions back to words.

    >>> from tutorlib.models import load_tokenizer
    >>> b = ner_collate(load_tokenizer())(ner_sentences("val", n=2))
    >>> b["labels"].shape == b["input_ids"].shape
    True
    """

    def collate(batch: Sequence[NerSentence]) -> dict[str, Any]:
        enc = tokenizer([list(s.words) for s in batch], is_split_into_words=True, truncation=True,
                        max_length=max_length, padding=True, return_tensors="pt")
        word_ids = [enc.word_ids(i) for i in range(len(batch))]
        labels = [align_labels(w, s.tags) for w, s in zip(word_ids, batch)]
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "labels": torch.tensor(labels), "word_ids": word_ids}

    return collate


def train_tagger(model: nn.Module, sentences: Sequence[NerSentence], collate, *, epochs: int = 3, lr: float = 5e-5,
                 batch_size: int = 16, seed: int = 0, device: str | torch.device = "cpu") -> list[float]:
    """Fine-tune ``model`` (a :class:`TokenClassifier`) with token-level cross-entropy; returns the mean loss of
    each epoch. AdamW (weight decay 0.01) with a linear decay of the learning rate to 0, on the course's
    :class:`~tutorlib.train.Trainer` (batches shuffled with ``seed``).

    >>> from transformers import BertConfig, BertModel
    >>> from tutorlib.models import load_tokenizer
    >>> tok = load_tokenizer()
    >>> enc = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
    ...                            num_attention_heads=2, intermediate_size=32))
    >>> losses = train_tagger(TokenClassifier(enc), ner_sentences("train", n=8), ner_collate(tok), epochs=2, lr=1e-2)
    >>> len(losses), losses[1] < losses[0]
    (2, True)
    """
    if not sentences:
        raise ValueError("no training sentences: pass a non-empty list of NerSentence")
    from transformers import get_linear_schedule_with_warmup

    trainer = Trainer(model, lr=lr, weight_decay=0.01, device=device, batch_size=batch_size, seed=seed,
                      collate_fn=collate, step_fn=_tagger_step,
                      scheduler=lambda opt, total: get_linear_schedule_with_warmup(opt, 0, total),
                      progress=False, log=False)
    losses = trainer.fit(list(sentences), epochs=epochs)["train_loss"]
    model.eval()
    return losses


def _tagger_step(trainer: Trainer, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``step_fn``: token-level cross-entropy; sub-word pieces and special tokens (label -100) do not count.
    The batch's ``word_ids`` (for :func:`predict_tags`) are not needed here."""
    logits = trainer.model(batch["input_ids"], batch["attention_mask"])
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)
    return {"loss": loss}


@torch.no_grad()
def predict_tags(model: nn.Module, sentences: Sequence[NerSentence], collate, batch_size: int = 64,
                 device: str | torch.device = "cpu") -> list[list[str]]:
    """One predicted tag per word for each sentence (the prediction on each word's first sub-word piece).

    >>> from transformers import BertConfig, BertModel
    >>> from tutorlib.models import load_tokenizer
    >>> tok = load_tokenizer()
    >>> enc = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
    ...                            num_attention_heads=2, intermediate_size=32))
    >>> s = ner_sentences("val", n=3)
    >>> [len(t) for t in predict_tags(TokenClassifier(enc), s, ner_collate(tok))] == [len(x.words) for x in s]
    True
    """
    model.to(device).eval()
    out: list[list[str]] = []
    for i in range(0, len(sentences), batch_size):
        chunk = sentences[i:i + batch_size]
        batch = collate(chunk)
        pred = model(batch["input_ids"].to(device), batch["attention_mask"].to(device)).argmax(-1).cpu()
        for row, (s, word_ids) in enumerate(zip(chunk, batch["word_ids"])):
            tags = ["O"] * len(s.words)
            seen = set()
            for pos, w in enumerate(word_ids):
                if w is not None and w not in seen:
                    seen.add(w)
                    tags[w] = NER_TAGS[pred[row, pos]]
            out.append(tags)
    return out
