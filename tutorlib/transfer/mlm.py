"""Masked-language-model pre-training (BERT's objective) of a small encoder from scratch.

Self-supervised pre-training needs no labels: hide some tokens and train the model to fill them in
from both sides. BERT's recipe (Devlin et al., 2019), :func:`mask_tokens`: choose 15 % of the
positions; of those, 80 % become ``[MASK]``, 10 % a random token and 10 % stay unchanged (so the model
cannot learn that only ``[MASK]`` positions matter); the loss is cross-entropy on the chosen positions
only. :class:`CompactVocab` keeps the word pieces that occur in the pre-training text, so a small model
does not pay for a 30,522-way softmax; :func:`tiny_bert` builds the ``transformers`` BERT it trains.

>>> ids = torch.arange(4, 104).reshape(4, 25)
>>> inputs, labels = mask_tokens(ids, mask_id=1, vocab_size=104, special_ids=(0, 1, 2, 3),
...                              generator=torch.Generator().manual_seed(0))
>>> bool(((labels == -100) | (labels == ids)).all()), bool((inputs[labels == -100] == ids[labels == -100]).all())
(True, True)
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import TensorDataset

from tutorlib.train import Trainer

__all__ = ["CompactVocab", "mask_tokens", "tiny_bert", "mlm_collate", "train_mlm", "masked_accuracy",
           "unigram_accuracy", "MeanPoolClassifier", "fit_classifier", "classifier_accuracy"]


class CompactVocab:
    """The word pieces of ``tokenizer`` that occur at least ``min_count`` times in ``texts``, renumbered from 0;
    ids 0–4 are ``[PAD]``, ``[MASK]``, ``[CLS]``, ``[SEP]``, ``[UNK]``.

    >>> from tutorlib.models import load_tokenizer
    >>> v = CompactVocab(load_tokenizer(), ["the room was clean", "the staff was rude"])
    >>> v.encode(["the room was rude", "zebra"])[1].tolist()
    [2, 4, 3, 0, 0, 0]
    >>> v.to_tokens(v.encode(["the room was rude"])[0])
    ['[CLS]', 'the', 'room', 'was', 'rude', '[SEP]']
    """

    SPECIALS = ("[PAD]", "[MASK]", "[CLS]", "[SEP]", "[UNK]")
    PAD, MASK, CLS, SEP, UNK = range(5)

    def __init__(self, tokenizer: Any, texts: Sequence[str], min_count: int = 1, max_length: int = 64) -> None:
        if not texts:
            raise ValueError("no texts to build the vocabulary from: pass the pre-training sentences")
        self.tokenizer, self.max_length = tokenizer, max_length
        counts = Counter(t for text in texts for t in self._pieces(text))
        kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        self.to_compact = {t: i + len(self.SPECIALS) for i, t in enumerate(kept)}
        self.counts = torch.zeros(len(self), dtype=torch.long)  # how often each compact id occurs in ``texts``
        for t, i in self.to_compact.items():
            self.counts[i] = counts[t]

    def _pieces(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False, truncation=True, max_length=self.max_length - 2)["input_ids"]

    def __len__(self) -> int:
        return len(self.SPECIALS) + len(self.to_compact)

    def to_tokens(self, ids: torch.Tensor | Sequence[int]) -> list[str]:
        """The word pieces of compact ``ids`` (padding left out), e.g. to print a masked sentence."""
        back = {i: t for t, i in self.to_compact.items()}
        pieces = []
        for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids):
            if i == self.PAD:
                continue
            pieces.append(self.SPECIALS[i] if i < len(self.SPECIALS) else self.tokenizer.convert_ids_to_tokens(back[i]))
        return pieces

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """``[CLS] pieces [SEP]`` for each text, padded with ``[PAD]`` to the longest, as a (B, T) tensor."""
        rows = [[self.CLS] + [self.to_compact.get(t, self.UNK) for t in self._pieces(x)] + [self.SEP] for x in texts]
        width = max(len(r) for r in rows)
        return torch.tensor([r + [self.PAD] * (width - len(r)) for r in rows])


def mask_tokens(ids: torch.Tensor, mask_id: int, vocab_size: int, special_ids: Sequence[int] = (0, 1, 2, 3),
                p: float = 0.15, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: returns ``(inputs, labels)``; ``labels`` is -100 except at the chosen positions, where it
    holds the original token. Of the chosen positions 80 % become ``mask_id``, 10 % a random non-special
    token, 10 % stay. Special tokens (``special_ids``) are never chosen.

    >>> ids = torch.full((200, 50), 7)
    >>> inputs, labels = mask_tokens(ids, mask_id=1, vocab_size=20, generator=torch.Generator().manual_seed(0))
    >>> chosen = labels != -100
    >>> round(chosen.float().mean().item(), 2), round((inputs[chosen] == 1).float().mean().item(), 1)
    (0.15, 0.8)
    """
    if ids.dim() != 2:
        raise ValueError(f"expected ids of shape (B, T), got {tuple(ids.shape)}: add a batch dimension with ids[None]")
    if not 0 < p < 1:
        raise ValueError(f"p is the fraction of positions to mask, between 0 and 1; got {p}")
    special = torch.zeros_like(ids, dtype=torch.bool)
    for s in special_ids:
        special |= ids == s
    u = torch.rand(ids.shape, generator=generator)
    chosen = (u < p) & ~special
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    v = torch.rand(ids.shape, generator=generator)
    inputs = ids.clone()
    inputs[chosen & (v < 0.8)] = mask_id
    low = max(special_ids) + 1 if special_ids else 0
    random_tokens = torch.randint(low, vocab_size, ids.shape, generator=generator)
    swap = chosen & (v >= 0.8) & (v < 0.9)
    inputs[swap] = random_tokens[swap]
    return inputs, labels


def tiny_bert(vocab_size: int, hidden: int = 128, layers: int = 2, heads: int = 2, intermediate: int = 256,
              max_positions: int = 64, seed: int = 0):
    """A small ``transformers.BertForMaskedLM`` with random weights (seeded).

    >>> m = tiny_bert(100, hidden=16, layers=1, heads=2, intermediate=32)
    >>> m(torch.tensor([[2, 5, 3]])).logits.shape
    torch.Size([1, 3, 100])
    """
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=intermediate, max_position_embeddings=max_positions, pad_token_id=0)
    return BertForMaskedLM(config)


def _stack_trimmed(items: Sequence[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Stack ``TensorDataset`` items ``(row, *rest)`` column by column and cut the rows' padding columns."""
    rows, *rest = (torch.stack(column) for column in zip(*items))
    return (rows[:, :int((rows != CompactVocab.PAD).sum(1).max())], *rest)


def mlm_collate(vocab_size: int, generator: torch.Generator | None = None):
    """A collate function for the :class:`~tutorlib.train.Trainer` over ``TensorDataset(ids)``: stacks the rows,
    trims the padding columns and applies fresh BERT masking (:func:`mask_tokens`, drawing from
    ``generator``), giving ``input_ids``, ``attention_mask`` and ``labels``.

    >>> collate = mlm_collate(30, torch.Generator().manual_seed(0))
    >>> b = collate([(torch.tensor([2, 5, 6, 3, 0]),), (torch.tensor([2, 7, 3, 0, 0]),)])
    >>> tuple(b["input_ids"].shape), b["attention_mask"].tolist()
    ((2, 4), [[True, True, True, True], [True, True, True, False]])
    """

    def collate(items: Sequence[tuple[torch.Tensor]]) -> dict[str, torch.Tensor]:
        (batch,) = _stack_trimmed(items)
        inputs, labels = mask_tokens(batch, CompactVocab.MASK, vocab_size, generator=generator)
        return {"input_ids": inputs, "attention_mask": batch != CompactVocab.PAD, "labels": labels}

    return collate


def train_mlm(model: nn.Module, ids: torch.Tensor, *, epochs: int = 10, lr: float = 1e-3, batch_size: int = 32,
              seed: int = 0, device: str | torch.device = "cpu") -> list[float]:
    """Pre-train ``model`` (a ``BertForMaskedLM``) on the token rows ``ids`` (from :meth:`CompactVocab.encode`)
    with fresh BERT masking of every batch (:func:`mlm_collate`); returns each epoch's mean masked-token loss.
    AdamW (weight decay 0.01) on the course's :class:`~tutorlib.train.Trainer`; ``seed`` fixes the batch
    order and the masking.

    >>> m = tiny_bert(30, hidden=16, layers=1, heads=2, intermediate=32)
    >>> ids = torch.tensor([[2] + [5, 6, 7, 8] * 3 + [3]] * 32)
    >>> losses = train_mlm(m, ids, epochs=5, lr=1e-2)
    >>> len(losses), losses[-1] < losses[0]
    (5, True)
    """
    collate = mlm_collate(model.config.vocab_size, torch.Generator().manual_seed(seed))
    trainer = Trainer(model, lr=lr, weight_decay=0.01, device=device, batch_size=batch_size, seed=seed,
                      collate_fn=collate, step_fn=lambda t, batch: {"loss": t.model(**batch).loss},
                      progress=False, log=False)
    losses = trainer.fit(TensorDataset(ids), epochs=epochs)["train_loss"]
    model.eval()
    return losses


@torch.no_grad()
def masked_accuracy(model: nn.Module, ids: torch.Tensor, seed: int = 1, batch_size: int = 128,
                    device: str | torch.device = "cpu") -> float:
    """The share of masked positions whose original token is the model's top prediction (one fixed masking).

    >>> m = tiny_bert(30, hidden=16, layers=1, heads=2, intermediate=32)
    >>> 0 <= masked_accuracy(m, torch.randint(5, 30, (8, 12))) <= 1
    True
    """
    g = torch.Generator().manual_seed(seed)
    model.to(device).eval()
    hit = total = 0
    for i in range(0, len(ids), batch_size):
        batch = ids[i:i + batch_size]
        inputs, labels = mask_tokens(batch, CompactVocab.MASK, model.config.vocab_size, generator=g)
        logits = model(input_ids=inputs.to(device), attention_mask=(batch != CompactVocab.PAD).to(device)).logits
        chosen = labels != -100
        hit += int((logits.argmax(-1).cpu()[chosen] == labels[chosen]).sum())
        total += int(chosen.sum())
    return hit / max(total, 1)


def unigram_accuracy(counts: torch.Tensor, ids: torch.Tensor, seed: int = 1) -> float:
    """The baseline: always predict the most frequent training token; its accuracy on the same masked positions
    :func:`masked_accuracy` scores (same seed).

    >>> unigram_accuracy(torch.tensor([0, 0, 0, 0, 0, 9, 1]), torch.full((10, 20), 5))
    1.0
    """
    g = torch.Generator().manual_seed(seed)
    top = int(counts.argmax())
    hit = total = 0
    for i in range(0, len(ids), 128):
        batch = ids[i:i + 128]
        _, labels = mask_tokens(batch, CompactVocab.MASK, len(counts), generator=g)
        chosen = labels != -100
        hit += int((labels[chosen] == top).sum())
        total += int(chosen.sum())
    return hit / max(total, 1)


class MeanPoolClassifier(nn.Module):
    """A sentence classifier on an encoder (e.g. ``tiny_bert(...).bert``): mean of the token states, then Linear.

    >>> m = MeanPoolClassifier(tiny_bert(30, hidden=16, layers=1, heads=2, intermediate=32).bert, 2)
    >>> m(torch.tensor([[2, 7, 3, 0]])).shape
    torch.Size([1, 2])
    """

    def __init__(self, encoder: nn.Module, num_labels: int = 2) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, **_: Any) -> torch.Tensor:
        mask = (input_ids != CompactVocab.PAD).unsqueeze(-1).float()
        hidden = self.encoder(input_ids=input_ids, attention_mask=mask.squeeze(-1)).last_hidden_state
        return self.head((hidden * mask).sum(1) / mask.sum(1).clamp(min=1))


def fit_classifier(model: nn.Module, ids: torch.Tensor, labels: Sequence[int], *, epochs: int = 5, lr: float = 1e-3,
                   batch_size: int = 32, seed: int = 0, device: str | torch.device = "cpu") -> list[float]:
    """Train a :class:`MeanPoolClassifier` on token rows ``ids`` and their ``labels`` (cross-entropy, AdamW with
    weight decay 0.01, on the course's :class:`~tutorlib.train.Trainer`; ``seed`` fixes the batch order);
    returns each epoch's mean loss.

    >>> m = MeanPoolClassifier(tiny_bert(30, hidden=16, layers=1, heads=2, intermediate=32).bert, 2)
    >>> ids = torch.randint(5, 30, (16, 8))
    >>> losses = fit_classifier(m, ids, [int(r[1] > 17) for r in ids], epochs=4, lr=1e-2)
    >>> losses[-1] < losses[0]
    True
    """
    y = torch.as_tensor(list(labels))
    if len(y) != len(ids):
        raise ValueError(f"got {len(ids)} rows of ids but {len(y)} labels: pass one label per row")
    trainer = Trainer(model, lr=lr, weight_decay=0.01, device=device, batch_size=batch_size, seed=seed,
                      collate_fn=_stack_trimmed, progress=False, log=False)
    losses = trainer.fit(TensorDataset(ids, y), epochs=epochs)["train_loss"]
    model.eval()
    return losses


@torch.no_grad()
def classifier_accuracy(model: nn.Module, ids: torch.Tensor, labels: Sequence[int],
                        device: str | torch.device = "cpu") -> float:
    """Accuracy of ``model`` on token rows ``ids``.

    >>> m = MeanPoolClassifier(tiny_bert(30, hidden=16, layers=1, heads=2, intermediate=32).bert, 2)
    >>> 0 <= classifier_accuracy(m, torch.randint(5, 30, (6, 8)), [0, 1, 0, 1, 0, 1]) <= 1
    True
    """
    model.to(device).eval()
    pred = torch.cat([model(ids[i:i + 128].to(device)).argmax(-1).cpu() for i in range(0, len(ids), 128)])
    return float((pred == torch.as_tensor(list(labels))).float().mean())
