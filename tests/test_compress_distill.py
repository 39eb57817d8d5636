"""Distillation: the loss against its formula and gradient, the Trainer step, the student and its initialisation."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from tutorlib.compress import (IGNORE_INDEX, DistillDataset, DistillStep, augment_texts, distill_collate,
                               distillation_loss, init_student_from_teacher, make_student, teacher_logits)
from tutorlib.data import load_reviews
from tutorlib.models import load_tokenizer
from tutorlib.train import Trainer


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def _manual(s, t, y, T, alpha):
    p_t = torch.softmax(t / T, -1)
    kl = (p_t * (torch.log(p_t) - torch.log_softmax(s / T, -1))).sum(-1).mean()
    return alpha * T * T * kl + (1 - alpha) * F.cross_entropy(s, y)


@pytest.mark.parametrize("T,alpha", [(1.0, 0.5), (2.0, 0.9), (4.0, 0.3), (3.0, 1.0), (2.0, 0.0)])
def test_loss_matches_the_formula(T, alpha):
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g) * 2
    y = torch.randint(0, 3, (6,), generator=g)
    assert torch.allclose(distillation_loss(s, t, y, T, alpha), _manual(s, t, y, T, alpha), atol=1e-6)


def test_gradient_of_the_soft_term_is_T_times_the_probability_gap():
    """d/ds [T² KL(p_t^T || p_s^T)] = T (p_s^T − p_t^T) / B: the T² keeps it on the hard term's scale."""
    s = torch.randn(4, 5, requires_grad=True)
    t = torch.randn(4, 5)
    T = 3.0
    distillation_loss(s, t, None, T, alpha=1.0).backward()
    expected = T * (torch.softmax(s.detach() / T, -1) - torch.softmax(t / T, -1)) / 4
    assert torch.allclose(s.grad, expected, atol=1e-6)
    assert distillation_loss(t.clone(), t, None, T, 1.0).abs() < 1e-6  # matching the teacher costs nothing


def test_unlabelled_rows_learn_from_the_teacher_only():
    s, t = torch.randn(4, 2), torch.randn(4, 2)
    none = torch.full((4,), IGNORE_INDEX)
    assert torch.allclose(distillation_loss(s, t, none, 2.0, 0.6), 0.6 * distillation_loss(s, t, None, 2.0, 1.0))
    some = torch.tensor([1, IGNORE_INDEX, 0, IGNORE_INDEX])
    hard = F.cross_entropy(s[[0, 2]], some[[0, 2]]) * 0.5
    assert torch.allclose(distillation_loss(s, t, some, 2.0, 0.6), 0.6 * distillation_loss(s, t, None, 2.0, 1.0) + 0.4 * hard)


def test_loss_errors_are_clear():
    s = torch.randn(3, 2)
    with pytest.raises(ValueError, match=r"expected student logits of shape \(B, C\)"):
        distillation_loss(torch.randn(3), s, None)
    with pytest.raises(ValueError, match="teacher logits must have"):
        distillation_loss(s, torch.randn(3, 4), None)
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(s, s, torch.zeros(3, dtype=torch.long), temperature=0)
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(s, s, torch.zeros(3, dtype=torch.long), alpha=1.5)
    with pytest.raises(ValueError, match="pass labels"):
        distillation_loss(s, s, None, alpha=0.5)
    with pytest.raises(ValueError, match="temperature"):
        DistillStep(temperature=-1.0)


def test_student_is_small_and_takes_teacher_batches(tok):
    student = make_student(hidden=64, layers=2, heads=2)
    enc = tok(["a fine hotel", "the worst support ever"], padding=True, return_tensors="pt")
    assert student(enc["input_ids"], enc["attention_mask"]).shape == (2, 2)
    n_blocks = sum(p.numel() for n, p in student.named_parameters() if ".layer." in n)
    assert n_blocks < 150_000
    with pytest.raises(ValueError, match="divisible"):
        make_student(hidden=30, heads=4)


def test_same_width_init_copies_teacher_layers():
    teacher = make_student(hidden=32, layers=4, heads=2, dropout=0.0).eval()
    student = make_student(hidden=32, layers=2, heads=2, dropout=0.0).eval()
    init_student_from_teacher(student, teacher, layer_map=[0, 3])
    for i, j in ((0, 0), (1, 3)):
        for (n, a), (_, b) in zip(student.encoder.encoder.layer[i].state_dict().items(),
                                  teacher.encoder.encoder.layer[j].state_dict().items()):
            assert torch.equal(a, b), n
    full = make_student(hidden=32, layers=4, heads=2, dropout=0.0).eval()
    init_student_from_teacher(full, teacher, layer_map=[0, 1, 2, 3])
    full.head.load_state_dict(teacher.head.state_dict())
    ids = torch.randint(0, 30522, (2, 6))
    assert torch.allclose(full(ids), teacher(ids), atol=1e-5)
    with pytest.raises(ValueError, match="layer_map"):
        init_student_from_teacher(student, teacher, layer_map=[0, 9])


def test_narrow_init_projects_teacher_embeddings():
    torch.manual_seed(0)
    teacher = make_student(vocab_size=200, hidden=32, layers=1, heads=2)
    with torch.no_grad():  # give the teacher's embeddings low-rank structure, like trained ones
        teacher.encoder.embeddings.word_embeddings.weight.copy_(torch.randn(200, 4) @ torch.randn(4, 32))
    student = make_student(vocab_size=200, hidden=8, layers=1, heads=2)
    init_student_from_teacher(student, teacher)
    t = teacher.encoder.embeddings.word_embeddings.weight.detach()
    s = student.encoder.embeddings.word_embeddings.weight.detach()
    gram_t = torch.corrcoef(t)[torch.triu_indices(200, 200, 1).unbind()]
    gram_s = torch.corrcoef(s)[torch.triu_indices(200, 200, 1).unbind()]
    assert torch.corrcoef(torch.stack([gram_t, gram_s]))[0, 1] > 0.9  # similar tokens stay similar
    with pytest.raises(ValueError, match="wider"):
        init_student_from_teacher(make_student(vocab_size=200, hidden=64, layers=1, heads=2), teacher)
    with pytest.raises(ValueError, match="vocabulary"):
        init_student_from_teacher(make_student(vocab_size=100, hidden=8, layers=1, heads=2), teacher)


def test_teacher_logits_equal_a_direct_forward(tok):
    teacher = make_student(hidden=32, layers=1, heads=2)
    texts = load_reviews("val", limit=10).texts
    logits = teacher_logits(teacher, texts, tok, batch_size=4)
    assert logits.shape == (10, 2)
    teacher.eval()
    enc = tok(texts[:4], padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(logits[:4], teacher(enc["input_ids"], enc["attention_mask"]), atol=1e-5)


def test_distill_step_trains_a_student_towards_the_teacher_through_the_trainer(tok):
    torch.manual_seed(0)
    train = load_reviews("train", limit=96)
    teacher = make_student(hidden=32, layers=1, heads=2, dropout=0.0)
    with torch.no_grad():
        teacher.head.weight.mul_(20)  # a confident teacher
    t_logits = teacher_logits(teacher, train.texts, tok)
    extra = augment_texts(train.texts, 32, seed=0)
    texts = train.texts + extra
    labels = train.labels + [IGNORE_INDEX] * len(extra)
    logits = torch.cat([t_logits, teacher_logits(teacher, extra, tok)])
    data = DistillDataset(texts, labels, logits)
    student = make_student(hidden=32, layers=1, heads=2, dropout=0.0)
    step = DistillStep(temperature=2.0, alpha=1.0)
    trainer = Trainer(student, lr=3e-3, batch_size=32, collate_fn=distill_collate(tok), step_fn=step,
                      progress=False, log=False)

    def agreement() -> float:
        student.eval()
        with torch.no_grad():
            enc = tok(train.texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
            pred = student(enc["input_ids"], enc["attention_mask"]).argmax(1)
        return float((pred == t_logits.argmax(1)).float().mean())

    first = agreement()
    history = trainer.fit(data, epochs=6)
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert agreement() > max(first, 0.8)
    # validation batches without teacher logits fall back to plain cross-entropy on the labels
    val = load_reviews("val", limit=32)
    out = trainer.evaluate(list(zip(val.texts, val.labels)))
    assert 0.0 <= out["val_accuracy"] <= 1.0 and out["val_loss"] > 0


def test_distill_step_runs_the_teacher_when_logits_are_missing(tok):
    teacher = make_student(hidden=32, layers=1, heads=2, dropout=0.0)
    student = copy.deepcopy(teacher)
    step = DistillStep(temperature=1.0, alpha=1.0, teacher=teacher)
    trainer = Trainer(student, progress=False, log=False)
    batch = distill_collate(tok)([("good", 1), ("bad", 0)])
    student.eval()
    assert float(step(trainer, batch)["loss"]) == pytest.approx(0.0, abs=1e-6)  # identical twins agree
    with pytest.raises(TypeError, match="dict batches"):
        step(trainer, (torch.zeros(2, 3), torch.zeros(2)))


def test_augment_texts_is_seeded_and_masks():
    src = ["the room was clean and the staff were friendly to us", "awful food and a rude waiter"]
    a, b = augment_texts(src, 20, seed=3), augment_texts(src, 20, seed=3)
    assert a == b and len(a) == 20
    assert any("[MASK]" in t for t in a)
    assert any(t not in src for t in a)
    with pytest.raises(ValueError, match="empty"):
        augment_texts([], 3)


def test_distill_dataset_checks_lengths():
    with pytest.raises(ValueError, match="one row each"):
        DistillDataset(["a", "b"], [0], torch.zeros(2, 2))
