"""tutorlib.regularize: penalties vs torch weight decay, dropout vs nn.Dropout, augmentation, label smoothing, sweeps, widget."""

from __future__ import annotations

import random

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tutorlib.data import load_digits
from tutorlib.models import MLP
from tutorlib.regularize import (AugmentedDataset, DigitAugment, Dropout, RegConfig, RegularizedLoss, TextAugment,
                                 TextCNN, add_noise, dropout, dropout_sweep, l1_penalty, l2_penalty,
                                 label_smoothing_loss, plot_gap_summary, plot_overfitting, plot_weight_histograms,
                                 rotate_image, shift_image, smooth_targets, sweep, token_dropout, train_regularized,
                                 word_swap)

matplotlib.use("Agg")


# --------------------------------------------------------------------------- penalties


def test_l2_penalty_in_the_loss_is_sgd_weight_decay() -> None:
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    b = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    b.load_state_dict(a.state_dict())
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1, weight_decay=0.05)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1)
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    for _ in range(5):
        opt_a.zero_grad()
        F.cross_entropy(a(x), y).backward()
        opt_a.step()
        opt_b.zero_grad()
        (F.cross_entropy(b(x), y) + 0.05 * l2_penalty(b, include_bias=True)).backward()
        opt_b.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, atol=1e-6, rtol=1e-5)


def test_l2_penalty_in_the_loss_is_adam_weight_decay_but_not_adamw() -> None:
    torch.manual_seed(1)
    base = nn.Linear(6, 2)
    x, y = torch.randn(16, 6), torch.randint(0, 2, (16,))

    def run(make_opt, penalty: float) -> torch.Tensor:
        m = nn.Linear(6, 2)
        m.load_state_dict(base.state_dict())
        opt = make_opt(m.parameters())
        for _ in range(6):
            opt.zero_grad()
            (F.cross_entropy(m(x), y) + penalty * l2_penalty(m, include_bias=True)).backward()
            opt.step()
        return m.weight.detach().clone()

    coupled = run(lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1), 0.0)
    in_loss = run(lambda ps: torch.optim.Adam(ps, lr=0.01), 0.1)
    decoupled = run(lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1), 0.0)
    torch.testing.assert_close(coupled, in_loss, atol=1e-6, rtol=1e-5)
    assert (coupled - decoupled).abs().max() > 1e-4


def test_penalties_skip_biases_and_have_the_right_gradient() -> None:
    m = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]))
    assert l1_penalty(m).item() == pytest.approx(7.5)
    assert l2_penalty(m).item() == pytest.approx(0.5 * (1 + 4 + 0.25 + 0 + 9 + 1))
    l1_penalty(m).backward()
    assert torch.equal(m[0].weight.grad, torch.sign(m[0].weight.detach()))
    assert m[0].bias.grad is None and m[1].weight.grad is None
    with pytest.raises(ValueError, match="no parameters"):
        l1_penalty(nn.BatchNorm1d(3))


def test_regularized_loss_applies_only_in_training() -> None:
    m = nn.Linear(4, 3)
    loss_fn = RegularizedLoss(m, l1=1e-2, l2=1e-2, label_smoothing=0.2)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    train_loss = loss_fn(m(x), y)
    want = F.cross_entropy(m(x), y, label_smoothing=0.2) + 1e-2 * l1_penalty(m) + 1e-2 * l2_penalty(m)
    torch.testing.assert_close(train_loss, want)
    m.eval()
    torch.testing.assert_close(loss_fn(m(x), y), F.cross_entropy(m(x), y))
    with pytest.raises(ValueError, match="label_smoothing"):
        RegularizedLoss(m, label_smoothing=1.0)


# --------------------------------------------------------------------------- dropout


def test_dropout_statistics_match_torch() -> None:
    x = torch.randn(400, 500, generator=torch.Generator().manual_seed(42)) + 1.0  # independent of the mask stream
    torch.manual_seed(0)
    ours = dropout(x, p=0.3)
    theirs = F.dropout(x, p=0.3)
    assert abs((ours == 0).float().mean() - (theirs == 0).float().mean()) < 0.01
    kept = ours != 0
    torch.testing.assert_close(ours[kept], x[kept] / 0.7)
    assert abs(ours.mean() - x.mean()) < 0.01  # expectation preserved
    torch.testing.assert_close(dropout(x, 0.3, training=False), x)
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    torch.manual_seed(5)
    a = dropout(x, 0.5)
    torch.manual_seed(5)
    assert torch.equal(a, dropout(x, 0.5))
    g = torch.Generator().manual_seed(1)
    assert torch.equal(dropout(x, 0.5, generator=g), dropout(x, 0.5, generator=torch.Generator().manual_seed(1)))


def test_dropout_module_and_errors() -> None:
    d = Dropout(0.5)
    x = torch.ones(1000)
    assert (d(x) == 0).any()
    d.eval()
    assert torch.equal(d(x), x)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dropout(x, p=1.5)
    with pytest.raises(TypeError, match="tensor"):
        dropout([1.0, 2.0], 0.5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- augmentation


def test_shift_image_fills_with_zeros_and_matches_roll_inside() -> None:
    x = torch.arange(1, 65, dtype=torch.float32).reshape(1, 8, 8)
    out = shift_image(x, 2, -1)
    assert torch.equal(out[:, :-1, 2:], x[:, 1:, :-2])
    assert out[:, :, :2].abs().sum() == 0 and out[:, -1, :].abs().sum() == 0
    assert torch.equal(shift_image(x, 0, 0), x)
    assert shift_image(x, 8, 0).abs().sum() == 0
    batch = torch.stack([x, 2 * x])
    assert torch.equal(shift_image(batch, 1, 1)[1], shift_image(2 * x, 1, 1))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        shift_image(torch.zeros(8, 8), 1, 0)
    with pytest.raises(TypeError, match="ints"):
        shift_image(x, 0.5, 0)  # type: ignore[arg-type]


def test_rotation_keeps_a_centred_blob_and_turns_a_bar() -> None:
    img = torch.zeros(1, 9, 9)
    img[0, 4, 1:8] = 1.0  # a horizontal bar
    turned = rotate_image(img, 90)
    assert turned[0, :, 4].sum() > 5 * turned[0, 4, :].sum() / 7  # mostly vertical now
    assert torch.allclose(rotate_image(img, 0), img, atol=1e-6)
    assert 0.5 < turned.sum() / img.sum() < 1.5


def test_digit_augment_changes_images_but_keeps_their_range() -> None:
    x = load_digits("train", limit=8).tensors[0]
    aug = DigitAugment(strength=1.0, seed=0)
    outs = torch.stack([aug(img) for img in x])
    assert outs.shape == x.shape and outs.min() >= 0 and outs.max() <= 1
    assert (outs - x).abs().mean() > 0.01
    assert torch.equal(DigitAugment(0.0)(x[0]), x[0])
    assert add_noise(torch.zeros(1, 2, 2), std=0.0).abs().sum() == 0
    ds = AugmentedDataset(load_digits("train", limit=4), aug)
    assert len(ds) == 4 and ds[0][0].shape == (1, 8, 8) and int(ds[0][1]) == int(load_digits("train", limit=4)[0][1])


def test_text_augmentation_keeps_words_and_respects_rates() -> None:
    text = "the room was clean and the staff were very kind to us"
    rng = random.Random(0)
    dropped = [token_dropout(text, 0.3, rng) for _ in range(200)]
    share = 1 - sum(len(d.split()) for d in dropped) / (200 * len(text.split()))
    assert 0.25 < share < 0.35
    assert all(set(d.split()) <= set(text.split()) for d in dropped)
    swapped = word_swap(text, 3, random.Random(1))
    assert sorted(swapped.split()) == sorted(text.split()) and swapped != text
    assert token_dropout("one", 0.9, random.Random(0)) == "one"
    assert TextAugment(0.0, 0.0)(text) == text
    with pytest.raises(TypeError, match="str"):
        token_dropout(3, 0.1)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- label smoothing


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothing_matches_torch(eps: float) -> None:
    logits, y = torch.randn(9, 4), torch.randint(0, 4, (9,))
    torch.testing.assert_close(label_smoothing_loss(logits, y, eps), F.cross_entropy(logits, y, label_smoothing=eps))
    soft = smooth_targets(y, 4, eps)
    torch.testing.assert_close(soft.sum(1), torch.ones(9))
    assert torch.allclose(soft.gather(1, y[:, None]).squeeze(1), torch.full((9,), 1 - eps + eps / 4))


def test_label_smoothing_bad_input() -> None:
    with pytest.raises(ValueError, match="int64"):
        smooth_targets(torch.tensor([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        smooth_targets(torch.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        label_smoothing_loss(torch.randn(4), torch.tensor([0, 1, 0, 1]))


# --------------------------------------------------------------------------- text model


def test_textcnn_ignores_padding_and_uses_pretrained_vectors() -> None:
    torch.manual_seed(0)
    vectors = torch.randn(50, 12)
    m = TextCNN(50, num_filters=8, embeddings=vectors).eval()
    assert torch.equal(m.embed.weight[1:], vectors[1:]) and not m.embed.weight.requires_grad
    assert m.embed.weight[0].abs().sum() == 0  # the padding row
    ids = torch.tensor([[5, 7, 9, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    short = m(ids[:, :3], mask[:, :3])
    torch.testing.assert_close(m(ids, mask), short)  # padding does not change the prediction
    with pytest.raises(ValueError, match="vocab_size"):
        m(torch.tensor([[60]]))
    with pytest.raises(ValueError, match="embeddings must have shape"):
        TextCNN(10, embeddings=torch.randn(5, 3))


# --------------------------------------------------------------------------- sweeps and plots


def _mlp(p: float) -> nn.Module:
    return MLP(64, [64], 10, dropout=p)


def test_train_regularized_measures_the_clean_train_set_and_overfits() -> None:
    train, val = load_digits("train", limit=48), load_digits("val", limit=96)
    res = train_regularized(RegConfig(lr=3e-3), _mlp, train, val, epochs=25, batch_size=16)
    first, last = res.history.epochs[0], res.history.epochs[-1]
    assert last["train_eval_loss"] < first["train_eval_loss"]
    assert res.train_accuracy == pytest.approx(last["train_accuracy"])
    assert res.train_accuracy > res.val_accuracy  # 48 examples: a real gap
    assert res.gap == pytest.approx(res.train_accuracy - res.val_accuracy)
    assert plot_overfitting(res.history).axes[0].get_yscale() == "log"


def test_early_stopping_restores_the_best_epoch() -> None:
    train, val = load_digits("train", limit=48), load_digits("val", limit=64)
    res = train_regularized(RegConfig(early_stopping=2, lr=2e-2), _mlp, train, val, epochs=40, batch_size=16)
    losses = res.history["val_loss"]
    assert res.stopped_epoch is not None and res.epochs_run < 40
    assert res.best_epoch == losses.index(min(losses))
    assert res.val_loss == pytest.approx(min(losses), rel=1e-5)


def test_regularizers_change_what_they_should() -> None:
    train, val = load_digits("train", limit=64), load_digits("val", limit=64)
    runs = sweep([RegConfig("base", lr=3e-3), RegConfig("l1", l1=1e-3, lr=3e-3),
                  RegConfig("wd", weight_decay=1.0, lr=3e-3), RegConfig("aug", augment=1.0, lr=3e-3)],
                 _mlp, train, val, epochs=8, progress=False)
    near_zero = {k: float((torch.cat([p.detach().abs().flatten() for p in r.model.parameters() if p.dim() > 1]) < 1e-2)
                          .float().mean()) for k, r in runs.items()}
    assert near_zero["l1"] > near_zero["base"]
    norm = {k: sum(float(p.detach().pow(2).sum()) for p in r.model.parameters() if p.dim() > 1) for k, r in runs.items()}
    assert norm["wd"] < norm["base"]
    assert runs["aug"].history["train_loss"][-1] > runs["base"].history["train_loss"][-1]  # harder training data
    fig = plot_gap_summary(runs)
    assert len(fig.axes) == 2 and fig.axes[0].get_ylabel() == "accuracy" and fig.legends
    assert "‖w‖" in plot_weight_histograms({k: r.model for k, r in runs.items()}).axes[0].get_legend().get_texts()[0].get_text()


def test_dropout_sweep_and_config_errors() -> None:
    res = dropout_sweep([0.0, 0.5], _mlp, load_digits("train", limit=32), load_digits("val", limit=32), epochs=1,
                        progress=False)
    assert sorted(res) == [0.0, 0.5] and res[0.5].config.dropout == 0.5
    with pytest.raises(ValueError, match="dropout"):
        RegConfig(dropout=1.0)
    with pytest.raises(ValueError, match="early_stopping"):
        RegConfig(early_stopping=0)
    with pytest.raises(ValueError, match="unique"):
        sweep([RegConfig("a"), RegConfig("a")], _mlp, load_digits("train", limit=8), load_digits("val", limit=8))
    with pytest.raises(TypeError, match="RegConfig"):
        train_regularized({"dropout": 0.5}, _mlp, load_digits("train", limit=8), load_digits("val", limit=8))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- widget


def test_regularization_explorer_trains_on_click() -> None:
    from tutorlib.regularize.widgets import regularization_explorer

    box = regularization_explorer(load_digits("train", limit=32), load_digits("val", limit=32), _mlp, epochs=2)
    ex = box.explorer
    assert "tutorlib-widget" in box._dom_classes and ex.runs == []
    ex.controls["dropout"].value = 0.3
    ex.controls["l1"].value = 1e-4
    ex.controls["early_stopping"].value = 5
    ex.button.click()
    assert len(ex.runs) == 1
    cfg = ex.runs[0][1].config
    assert (cfg.dropout, cfg.l1, cfg.early_stopping) == (0.3, 1e-4, 5)
    assert "dropout 0.3" in ex.runs[0][0] and "gap" in ex.status.value
    ex.controls["epochs"].value = 3
    r = ex.train()
    assert len(ex.runs) == 2 and r.epochs_run <= 3 and not ex.button.disabled
