"""Measurement, Pareto helpers and the sparsity explorer widget."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from tutorlib.compress import (Measurement, SparsityExplorer, accuracy_of, amdahl_speedup,  # noqa: E402
                               compare_latency, correct_of, count_weights, latency_ms, make_permanent,
                               matmul_share, measure, measurements_table, model_bytes, paired_difference,
                               pareto_front, plot_variants, prune_and_measure,
                               prune_magnitude, quantize_legacy, retime, smallest_above, sparsity_explorer, time_by_op)
from tutorlib.data import load_digits  # noqa: E402
from tutorlib.models import MLP, SmallCNN  # noqa: E402
from tutorlib.train import Trainer  # noqa: E402


def test_count_parameters_and_bytes():
    model = nn.Sequential(nn.Linear(10, 20), nn.BatchNorm1d(20), nn.Linear(20, 3))
    total, nz = count_weights(model)
    assert total == sum(p.numel() for p in model.parameters())  # BN running stats are not weights
    assert nz == sum(int(torch.count_nonzero(p)) for p in model.parameters())  # BN's bias starts at 0
    with torch.no_grad():
        model[0].weight[:5] = 0
    assert count_weights(model)[1] == nz - 50
    assert model_bytes(model) > 4 * total
    with pytest.raises(TypeError, match="nn.Module"):
        count_weights("model")


def test_latency_and_interleaved_comparison():
    small, big = nn.Linear(32, 32), nn.Sequential(*[nn.Linear(512, 512) for _ in range(6)])
    assert latency_ms(small, torch.randn(8, 32), repeats=3) > 0
    t = compare_latency({"small": nn.Linear(512, 16), "big": big}, torch.randn(64, 512), repeats=7, warmup=1)
    assert t["small"] < t["big"]
    assert latency_ms(nn.Bilinear(4, 4, 2), (torch.randn(2, 4), torch.randn(2, 4)), repeats=2) > 0  # tuple inputs
    with pytest.raises(ValueError, match="repeats"):
        compare_latency({"a": small}, torch.randn(2, 32), repeats=0)
    with pytest.raises(ValueError, match="no models"):
        compare_latency({}, torch.randn(2, 32))


def test_retime_replaces_only_the_latency():
    small, big = nn.Linear(512, 16), nn.Sequential(*[nn.Linear(512, 512) for _ in range(6)])
    x = torch.randn(64, 512)
    stale = [Measurement("small", 1, 1, 10, 1e6, 0.5, {"note": 1}), Measurement("big", 2, 2, 20, 1e-6, 0.9)]
    fresh = retime(stale, {"small": small, "big": big}, x, repeats=5, warmup=1)
    assert [p.name for p in fresh] == ["small", "big"]
    assert fresh[0].latency_ms < fresh[1].latency_ms  # the made-up latencies said the opposite
    assert (fresh[0].params, fresh[0].bytes, fresh[0].accuracy, fresh[0].extra) == (1, 10, 0.5, {"note": 1})
    assert stale[0].latency_ms == 1e6  # the inputs are not changed
    with pytest.raises(KeyError, match="no model given for"):
        retime(stale, {"small": small}, x)


def test_time_by_op_finds_the_matmuls_float_and_int8():
    model = nn.Sequential(nn.Linear(256, 1024), nn.GELU(), nn.Linear(1024, 256))
    x = torch.randn(64, 256)
    ops = time_by_op(model, x, repeats=2)
    assert {"aten::addmm", "aten::gelu"} <= set(ops)
    assert list(ops.values()) == sorted(ops.values(), reverse=True)
    # which ops were timed is behaviour; how much time each took depends on the machine's load (a busy CI
    # machine once gave a stray aten::expand 2.6 ms), so the share is only checked to be a fraction here
    assert 0.0 < matmul_share(ops) <= 1.0
    assert matmul_share({"aten::addmm": 3.0, "aten::gelu": 1.0, "quantized::linear_dynamic": 4.0}) == 7 / 8
    q_ops = time_by_op(quantize_legacy(model), x, repeats=2)
    assert "quantized::linear_dynamic" in q_ops and "aten::addmm" not in q_ops
    assert matmul_share(q_ops) > 0
    with pytest.raises(ValueError, match="no time"):
        matmul_share({})


def test_amdahl_speedup_bounds():
    assert amdahl_speedup(0.0, 10.0) == 1.0
    assert amdahl_speedup(1.0, 3.0) == pytest.approx(3.0)
    assert amdahl_speedup(0.8, 2.0) == pytest.approx(1 / (0.2 + 0.4))
    assert amdahl_speedup(0.9, 1e12) < 10.0 + 1e-6
    with pytest.raises(ValueError, match="fraction"):
        amdahl_speedup(1.5, 2.0)
    with pytest.raises(ValueError, match="factor"):
        amdahl_speedup(0.5, 0.0)


def test_timing_restores_training_mode():
    m = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    m.train()
    latency_ms(m, torch.randn(2, 4), repeats=1)
    assert m.training


def test_accuracy_of_matches_the_trainer_and_measure_fills_everything():
    torch.manual_seed(0)
    model = MLP(64, [32], 10)
    train, val = load_digits("train", limit=256), load_digits("val", limit=100)
    trainer = Trainer(model, lr=1e-2, progress=False, log=False)
    trainer.fit(train, epochs=2)
    acc = accuracy_of(model, val)
    assert acc == pytest.approx(trainer.evaluate(val)["val_accuracy"])
    m = measure(model, torch.rand(32, 1, 8, 8), val, name="mlp", repeats=3, note="dense")
    assert m.name == "mlp" and m.accuracy == pytest.approx(acc) and m.extra["note"] == "dense"
    assert m.params == m.nonzero == sum(p.numel() for p in model.parameters())
    assert m.latency_ms > 0 and m.bytes > 0
    d = m.as_dict()
    assert d["note"] == "dense" and d["size_mb"] == pytest.approx(m.bytes / 1e6)


def test_pareto_front_and_smallest_above():
    pts = [
        {"name": "dense", "latency_ms": 10.0, "bytes": 100, "accuracy": 0.90},
        {"name": "int8", "latency_ms": 5.0, "bytes": 25, "accuracy": 0.895},
        {"name": "pruned", "latency_ms": 10.0, "bytes": 100, "accuracy": 0.88},  # dominated by dense
        {"name": "student", "latency_ms": 1.0, "bytes": 10, "accuracy": 0.80},
        {"name": "bad", "latency_ms": 6.0, "bytes": 50, "accuracy": 0.70},  # dominated by int8
    ]
    assert pareto_front(pts) == ["student", "int8", "dense"]
    assert pareto_front(pts, x="bytes") == ["student", "int8", "dense"]
    assert smallest_above(pts, 0.85) == "int8"
    assert smallest_above(pts, 0.9) == "dense"
    assert smallest_above(pts, 0.5) == "student"
    assert smallest_above(pts, 0.99) is None
    ms = [Measurement("a", 10, 10, 100, 2.0, 0.9), Measurement("b", 10, 5, 50, 1.0, 0.9)]
    assert pareto_front(ms) == ["b"]
    with pytest.raises(KeyError, match="needs numeric"):
        pareto_front([{"name": "x", "latency_ms": 1.0}])
    with pytest.raises(TypeError, match="Measurement objects or dicts"):
        pareto_front([3])


def test_table_and_plot():
    ms = [Measurement("dense", 100, 100, 4000, 8.0, 0.9), Measurement("int8", 100, 100, 1000, 4.0, 0.89)]
    table = measurements_table(ms, baseline="dense")
    assert "| int8 |" in table and "2.00×" in table and "4.00×" in table
    with pytest.raises(KeyError, match="no variant named"):
        measurements_table(ms, baseline="nope")
    fig = plot_variants(ms, x="size_mb")
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() == "accuracy" and ax.get_title()


# --------------------------------------------------------------------------- the widget


def _trained_cnn():
    torch.manual_seed(0)
    cnn = SmallCNN(width=8)
    Trainer(cnn, lr=3e-3, progress=False, log=False).fit(load_digits("train", limit=384), epochs=2)
    return cnn.eval()


def test_prune_and_measure_leaves_the_model_alone():
    cnn = _trained_cnn()
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    val = load_digits("val", limit=128)
    r = prune_and_measure(cnn, 0.8, "global", lambda m: accuracy_of(m, val), example=torch.rand(4, 1, 8, 8))
    assert r["sparsity_measured"] == pytest.approx(0.8, abs=0.01)
    assert r["nonzero"] < 0.3 * r["params"] and r["latency_ms"] > 0
    assert all(torch.equal(before[k], v) for k, v in cnn.state_dict().items())
    s = prune_and_measure(cnn, 0.5, "structured", lambda m: accuracy_of(m, val))
    assert s["params"] < 0.5 * count_weights(cnn)[0]
    with pytest.raises(ValueError, match="method"):
        prune_and_measure(cnn, 0.5, "random", lambda m: 1.0)


def test_explorer_slider_prunes_and_redraws():
    cnn = _trained_cnn()
    val = load_digits("val", limit=128)
    explorer = SparsityExplorer(cnn, lambda m: accuracy_of(m, val))
    assert "tutorlib-widget" in explorer.box._dom_classes
    explorer.update()
    first_fig, first_info = explorer.figure, explorer.info.value
    explorer.slider.value = 0.9  # what moving the slider does
    assert len(explorer.history) == 2 and explorer.history[-1]["sparsity"] == 0.9
    assert explorer.history[-1]["accuracy"] <= explorer.history[0]["accuracy"] + 0.02
    assert explorer.info.value != first_info and "90%" in explorer.info.value
    assert explorer.figure is not first_fig
    line = explorer.figure.axes[0].lines[0]
    assert list(line.get_xdata()) == [0.0, 0.0, 0.9]  # dense baseline, then the points tried
    explorer.dropdown.value = "structured"
    assert explorer.history[-1]["method"] == "structured"
    assert explorer.history[-1]["params"] < explorer.history[0]["params"]
    assert len(explorer.figure.axes[0].lines) >= 2  # one curve per method tried
    box = sparsity_explorer(cnn, lambda m: 0.5)
    assert box.explorer.history and "tutorlib-widget" in box._dom_classes


def test_explorer_on_a_masked_copy_is_not_needed():
    """The explorer prunes copies: the caller's model keeps no masks."""
    model = MLP(64, [16], 10)
    SparsityExplorer(model, lambda m: 1.0).update(0.5, "layer")
    prune_magnitude(model, 0.1)
    make_permanent(model)
    with pytest.raises(TypeError, match="evaluate"):
        SparsityExplorer(model, evaluate=0.5)


def test_correct_of_agrees_with_accuracy_of():
    cnn = _trained_cnn()
    val = load_digits("val", limit=128)
    correct = correct_of(cnn, val)
    assert correct.dtype == torch.bool and correct.shape == (len(val),)
    assert correct.float().mean().item() == pytest.approx(accuracy_of(cnn, val))


def test_paired_difference_uses_the_disagreements():
    a = torch.tensor([True] * 80 + [False] * 20)
    same = paired_difference(a, a)
    assert same == (0.0, 0.0)  # identical answers: no difference and no uncertainty
    b = a.clone()
    b[:4] = False  # b gets 4 of the 100 wrong that a got right
    diff, se = paired_difference(a, b)
    assert diff == pytest.approx(-4.0)
    d = (b.float() - a.float())
    assert se == pytest.approx(100 * d.std().item() / 10)  # sd of the per-example differences / sqrt(100)
    assert 0 < se < 3  # far smaller than the unpaired error of two 80 % accuracies on 100 examples (≈ 5.7)
    with pytest.raises(ValueError, match="same"):
        paired_difference(a, a[:50])
