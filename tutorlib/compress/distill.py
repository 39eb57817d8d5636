"""Knowledge distillation: a small student learns from a large teacher's softened predictions.

Loss (Hinton et al., 2015): ``alpha * T² * KL(softmax(t/T) ‖ softmax(s/T)) + (1 - alpha) * CE(s, y)``.
The temperature ``T`` > 1 exposes how the teacher ranks the wrong classes ("dark knowledge"); the
``T²`` keeps the soft term's gradients on the same scale as the hard one.

The distillation step plugs into the course's one training loop as ``Trainer(student, step_fn=DistillStep(...))``.
The teacher's logits are computed once (:func:`teacher_logits`) and travel with the data
(:class:`DistillDataset`), so training the student costs no teacher forward passes; examples
without a label (``-100``, e.g. augmented text, :func:`augment_texts`) learn from the teacher alone.

>>> import torch
>>> s, t = torch.randn(4, 2), torch.randn(4, 2)
>>> float(distillation_loss(s, t, torch.tensor([0, 1, 1, 0]), temperature=2.0, alpha=0.5)) > 0
True
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

__all__ = [
    "IGNORE_INDEX",
    "distillation_loss",
    "DistillStep",
    "DistillDataset",
    "distill_collate",
    "teacher_logits",
    "make_student",
    "init_student_from_teacher",
    "augment_texts",
]

#: Label of an example that has no ground truth (learns from the teacher only), as in ``F.cross_entropy``.
IGNORE_INDEX = -100


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None = None,
                      temperature: float = 2.0, alpha: float = 0.5) -> torch.Tensor:
    """``alpha · T² · KL(teacher_T ‖ student_T) + (1 − alpha) · CE(student, labels)``, averaged over the batch.

    ``labels`` equal to ``IGNORE_INDEX`` (or ``labels=None``) drop the hard term for those rows;
    ``alpha=1`` is pure distillation, ``alpha=0`` ordinary training.

    >>> s = torch.tensor([[2.0, 0.0]]); t = torch.tensor([[2.0, 0.0]])
    >>> float(distillation_loss(s, t, torch.tensor([0]), temperature=1.0, alpha=1.0))
    0.0
    """
    if not isinstance(student_logits, torch.Tensor) or student_logits.dim() != 2:
        got = tuple(student_logits.shape) if isinstance(student_logits, torch.Tensor) else type(student_logits).__name__
        raise ValueError(f"expected student logits of shape (B, C), got {got}")
    if not isinstance(teacher_logits, torch.Tensor) or teacher_logits.shape != student_logits.shape:
        got = tuple(teacher_logits.shape) if isinstance(teacher_logits, torch.Tensor) else type(teacher_logits).__name__
        raise ValueError(f"teacher logits must have the student's shape {tuple(student_logits.shape)}, got {got}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    t = float(temperature)
    teacher_logits = teacher_logits.detach().to(student_logits.dtype)
    log_p_student = F.log_softmax(student_logits / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits / t, dim=-1)
    soft = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * t * t
    if labels is None or alpha == 1.0:
        if alpha < 1.0 and labels is None:
            raise ValueError("alpha < 1 mixes in the hard-label loss: pass labels (or set alpha=1.0)")
        return alpha * soft
    if labels.shape != student_logits.shape[:1]:
        raise ValueError(f"labels must have shape ({student_logits.shape[0]},), got {tuple(labels.shape)}")
    labelled = labels != IGNORE_INDEX
    if bool(labelled.any()):
        # mean over labelled rows, weighted by their share of the batch so both terms are per-example averages
        hard = F.cross_entropy(student_logits, labels, ignore_index=IGNORE_INDEX) * labelled.float().mean()
    else:
        hard = student_logits.sum() * 0.0
    return alpha * soft + (1.0 - alpha) * hard


@dataclass
class DistillStep:
    """A ``step_fn`` for :class:`tutorlib.train.Trainer` that trains the student with :func:`distillation_loss`.

    Batches are dicts with ``input_ids``, ``attention_mask``, ``labels`` and, for training,
    ``teacher_logits`` (from :class:`DistillDataset`). Without ``teacher_logits`` the step runs the
    ``teacher`` if one was given, else falls back to cross-entropy — so validation data without
    teacher logits reports the student's ordinary loss and accuracy.

    >>> from tutorlib.train import Trainer
    >>> step = DistillStep(temperature=2.0, alpha=0.7)
    >>> student = nn.Linear(3, 2)
    >>> batch = {"input_ids": torch.randn(4, 3), "labels": torch.tensor([0, 1, 0, 1]), "teacher_logits": torch.randn(4, 2)}
    >>> class Wrap(nn.Module):
    ...     def __init__(self): super().__init__(); self.f = student
    ...     def forward(self, input_ids, attention_mask=None): return self.f(input_ids)
    >>> out = step(Trainer(Wrap(), progress=False, log=False), batch)
    >>> sorted(out)
    ['logits', 'loss', 'targets']
    """

    temperature: float = 2.0
    alpha: float = 0.5
    teacher: nn.Module | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long),
                          self.temperature, self.alpha)  # validates temperature and alpha early

    def __call__(self, trainer: Any, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not isinstance(batch, dict) or "input_ids" not in batch:
            raise TypeError("DistillStep expects dict batches with input_ids/attention_mask/labels: "
                            "use distill_collate(tokenizer) or text_collate(tokenizer)")
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "teacher_logits")}
        labels = batch.get("labels")
        student_logits = trainer.model(**inputs)
        student_logits = getattr(student_logits, "logits", student_logits)
        t_logits = batch.get("teacher_logits")
        if t_logits is None and self.teacher is not None:
            self.teacher.eval()
            with torch.no_grad():
                out = self.teacher(**inputs)
                t_logits = getattr(out, "logits", out)
        if t_logits is None:
            if labels is None:
                raise ValueError("a batch has neither teacher_logits nor labels: nothing to learn from")
            loss = F.cross_entropy(student_logits, labels, ignore_index=IGNORE_INDEX)
        else:
            loss = distillation_loss(student_logits, t_logits, labels, self.temperature, self.alpha)
        return {"loss": loss, "logits": student_logits, "targets": labels}


class DistillDataset(Dataset):
    """Texts with labels (``IGNORE_INDEX`` for none) and the teacher's logits; items ``(text, label, logits)``.

    >>> ds = DistillDataset(["good", "bad"], [1, 0], torch.tensor([[0.0, 2.0], [2.0, 0.0]]))
    >>> ds[0][0], ds[0][1], ds[0][2].tolist()
    ('good', 1, [0.0, 2.0])
    """

    def __init__(self, texts: Sequence[str], labels: Sequence[int], logits: torch.Tensor) -> None:
        if not (len(texts) == len(labels) == len(logits)):
            raise ValueError(f"texts ({len(texts)}), labels ({len(labels)}) and logits ({len(logits)}) must have one row each")
        if logits.dim() != 2:
            raise ValueError(f"logits must be (N, C), got {tuple(logits.shape)}")
        self.texts, self.labels, self.logits = list(texts), [int(y) for y in labels], logits.detach().float().cpu()

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> tuple[str, int, torch.Tensor]:
        return self.texts[i], self.labels[i], self.logits[i]


def distill_collate(tokenizer: Any, max_length: int = 64) -> Callable[[Sequence[tuple]], dict]:
    """Collate ``(text, label[, teacher_logits])`` items into a tokenized dict (with ``teacher_logits`` when given).

    >>> from tutorlib.models import load_tokenizer
    >>> b = distill_collate(load_tokenizer())([("fine", 1, torch.zeros(2)), ("meh", -100, torch.ones(2))])
    >>> sorted(b), b["teacher_logits"].shape
    (['attention_mask', 'input_ids', 'labels', 'teacher_logits'], torch.Size([2, 2]))
    """
    if max_length <= 0:
        raise ValueError(f"max_length must be positive, got {max_length}")

    def collate(items: Sequence[tuple]) -> dict:
        if not items:
            raise ValueError("empty batch")
        texts = [it[0] for it in items]
        enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                 "labels": torch.tensor([int(it[1]) for it in items], dtype=torch.long)}
        if len(items[0]) > 2:
            batch["teacher_logits"] = torch.stack([torch.as_tensor(it[2], dtype=torch.float32) for it in items])
        return batch

    return collate


def teacher_logits(teacher: nn.Module, texts: Sequence[str], tokenizer: Any, batch_size: int = 64,
                   max_length: int = 64, device: str | torch.device | None = None) -> torch.Tensor:
    """The teacher's logits for ``texts`` (eval mode, no gradients), shape (N, C), on the CPU.

    Runs through :func:`tutorlib.train.predict` — the course's one loop — so device placement is the usual.

    >>> from tutorlib.models import load_tokenizer
    >>> class Tiny(nn.Module):
    ...     def __init__(self): super().__init__(); self.e = nn.Embedding(30522, 2)
    ...     def forward(self, input_ids, attention_mask=None): return self.e(input_ids).mean(1)
    >>> teacher_logits(Tiny(), ["a", "b", "c"], load_tokenizer()).shape
    torch.Size([3, 2])
    """
    from tutorlib.train import predict

    if len(texts) == 0:
        raise ValueError("no texts to label")
    data = [(t, IGNORE_INDEX) for t in texts]
    logits, _ = predict(teacher, data, device=device, batch_size=batch_size,
                        collate_fn=distill_collate(tokenizer, max_length))
    return logits


def make_student(vocab_size: int = 30522, hidden: int = 128, layers: int = 2, heads: int = 2,
                 intermediate: int | None = None, num_labels: int = 2, max_positions: int = 512,
                 dropout: float = 0.1, pad_token_id: int = 0) -> nn.Module:
    """A small BERT classifier over the MiniLM tokenizer's ids: ``layers`` blocks of width ``hidden``.

    The result is a :class:`tutorlib.models.MiniLMClassifier` with a freshly initialised
    ``transformers.BertModel`` encoder, so it takes the same batches as the teacher.

    >>> s = make_student(hidden=32, layers=1, heads=2)
    >>> s(torch.tensor([[101, 2204, 102]])).shape
    torch.Size([1, 2])
    """
    from transformers import BertConfig, BertModel

    from tutorlib.models import MiniLMClassifier

    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
    if layers < 1:
        raise ValueError(f"layers must be at least 1, got {layers}")
    config = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=intermediate or 4 * hidden, max_position_embeddings=max_positions,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, pad_token_id=pad_token_id)
    return MiniLMClassifier(num_labels, encoder=BertModel(config, add_pooling_layer=False), dropout=dropout)


@torch.no_grad()
def init_student_from_teacher(student: nn.Module, teacher: nn.Module, layer_map: Sequence[int] | None = None) -> nn.Module:
    """Initialise a student's encoder from the teacher's (in place); returns the student.

    Same width: copy the embeddings and teacher layers ``layer_map`` (default: evenly spaced,
    as in DistilBERT). Narrower student: project the teacher's word and position embeddings onto
    their top principal directions (PCA), so token ids start with meaningful vectors; blocks stay random.

    >>> t = make_student(hidden=32, layers=4); s = make_student(hidden=16, layers=1)
    >>> _ = init_student_from_teacher(s, t)
    """
    s_enc, t_enc = getattr(student, "encoder", student), getattr(teacher, "encoder", teacher)
    s_emb, t_emb = s_enc.embeddings, t_enc.embeddings
    hs, ht = s_enc.config.hidden_size, t_enc.config.hidden_size
    if s_emb.word_embeddings.num_embeddings != t_emb.word_embeddings.num_embeddings:
        raise ValueError("student and teacher must share the vocabulary (the same tokenizer)")
    if hs == ht:
        s_emb.load_state_dict(t_emb.state_dict(), strict=False)
        n_s, n_t = len(s_enc.encoder.layer), len(t_enc.encoder.layer)
        if layer_map is None:
            layer_map = [round(i * (n_t - 1) / max(n_s - 1, 1)) for i in range(n_s)] if n_s > 1 else [n_t - 1]
        if len(layer_map) != n_s or any(not 0 <= i < n_t for i in layer_map):
            raise ValueError(f"layer_map must list {n_s} teacher layer indices in [0, {n_t}), got {list(layer_map)}")
        for i, j in enumerate(layer_map):
            s_enc.encoder.layer[i].load_state_dict(t_enc.encoder.layer[j].state_dict())
        return student
    if hs > ht:
        raise ValueError(f"the student ({hs}) is wider than the teacher ({ht}): nothing to project")
    words = t_emb.word_embeddings.weight.float()
    mean = words.mean(0, keepdim=True)
    # principal directions of the teacher's token embeddings (H_t × H_t eigenproblem, cheap)
    cov = (words - mean).T @ (words - mean) / words.shape[0]
    _, vecs = torch.linalg.eigh(cov)
    proj = vecs[:, -hs:].flip(1)  # (H_t, H_s), largest variance first
    new_words = (words - mean) @ proj
    new_words = new_words * (0.02 / new_words.std())  # BERT's init scale, so the first LayerNorm sees the usual range
    s_emb.word_embeddings.weight.copy_(new_words.to(s_emb.word_embeddings.weight.dtype))
    n_pos = min(s_emb.position_embeddings.num_embeddings, t_emb.position_embeddings.num_embeddings)
    pos = (t_emb.position_embeddings.weight[:n_pos].float() - mean) @ proj
    s_emb.position_embeddings.weight[:n_pos].copy_(pos * (0.02 / pos.std().clamp(min=1e-8)))
    return student


def augment_texts(texts: Sequence[str], n: int, seed: int = 0, p_mask: float = 0.1, p_drop: float = 0.1,
                  mask_token: str = "[MASK]", min_words: int = 3) -> list[str]:
    """``n`` new sentences made from ``texts`` by masking words, dropping words and cutting spans.

    The recipe of Tang et al. (2019, "Distilling task-specific knowledge from BERT into simple
    neural networks"): the teacher labels these variants, giving the student more to learn from
    than the labelled set alone.

    >>> out = augment_texts(["the food was great but the service slow"], 3, seed=1)
    >>> len(out), all(isinstance(t, str) and t for t in out)
    (3, True)
    """
    if not texts:
        raise ValueError("texts is empty: nothing to augment")
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = rng.choice(texts).split()
        if len(words) > min_words and rng.random() < 0.3:  # a contiguous span of at least half the words
            length = rng.randint(max(min_words, len(words) // 2), len(words))
            start = rng.randint(0, len(words) - length)
            words = words[start:start + length]
        new = []
        for w in words:
            r = rng.random()
            if r < p_mask:
                new.append(mask_token)
            elif r < p_mask + p_drop and len(words) > min_words:
                continue
            else:
                new.append(w)
        out.append(" ".join(new) if new else " ".join(words))
    return out
