"""tutorlib.optim: LR range test, 2-D surfaces, search at equal budget, real-training comparisons, widgets."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import optuna
import pytest
import torch

from tutorlib.data import load_digits
from tutorlib.models import MLP
from tutorlib.optim.compare import batch_size_sweep, compare_optimizers, plot_comparison, weight_norm
from tutorlib.optim.lr_find import LRFindResult, lr_find, suggest_lr
from tutorlib.optim.search import (PruningCallback, best_so_far, compare_search, grid_for, plot_pruning, plot_search,
                                   run_search)
from tutorlib.optim.surfaces import SURFACES, plot_trajectories, rosenbrock, run_trajectory, saddle

matplotlib.use("Agg")


# --------------------------------------------------------------------------- LR range test


def test_lr_find_restores_weights_and_finds_a_falling_region() -> None:
    torch.manual_seed(0)
    model = MLP(64, [32], 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = lr_find(model, load_digits("train"), "adam", start_lr=1e-5, end_lr=10, num_steps=80, batch_size=32,
                  progress=False)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed: lr_find must restore the weights"
    assert len(res.lrs) == len(res.losses) == len(res.smoothed) >= 10
    assert all(b > a for a, b in zip(res.lrs, res.lrs[1:]))  # geometric increase
    i_min = int(np.argmin(res.smoothed))
    assert res.smoothed[i_min] < res.smoothed[0] - 0.3  # the loss really fell somewhere
    assert res.lrs[0] <= res.suggestion <= res.min_loss_lr
    assert res.stopped_early  # Adam at lr 10 explodes
    fig = res.plot()
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_title() == "LR range test"


def test_suggest_lr_on_a_known_curve() -> None:
    lrs = list(np.logspace(-5, 0, 60))
    loss = [2 - math.tanh(3 * (math.log10(lr) + 3)) + (0 if lr < 0.1 else 50 * (lr - 0.1)) for lr in lrs]
    steep = suggest_lr(lrs, loss)
    assert 3e-4 < steep < 3e-3  # steepest fall of the tanh is at 1e-3
    assert math.isclose(suggest_lr(lrs, loss, "min/10"), lrs[int(np.argmin(loss))] / 10)
    with pytest.raises(ValueError, match="unknown method"):
        suggest_lr(lrs, loss, "valley")


def test_lr_find_bad_input() -> None:
    with pytest.raises(ValueError, match="start_lr"):
        lr_find(MLP(64, [8], 10), load_digits("train", limit=32), start_lr=1.0, end_lr=0.1)
    with pytest.raises(TypeError, match="nn.Module"):
        lr_find("model", load_digits("train", limit=32))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lr must be > 0"):
        LRFindResult([1e-3, 1e-2, 1e-1], [1, 1, 1], [1, 1, 1], 1e-2, 1e-2).loss_at(0)


# --------------------------------------------------------------------------- surfaces


def test_surfaces_have_the_stated_minima() -> None:
    assert rosenbrock(torch.tensor([1.0, 1.0])).item() == 0.0
    assert saddle(torch.tensor([0.0, 1.0])).item() == -0.25
    for surf in SURFACES.values():
        assert math.isclose(float(surf(torch.tensor(surf.minimum))), surf.min_value, abs_tol=1e-9)


def test_trajectories_descend_and_momentum_beats_sgd_on_the_bowl() -> None:
    sgd = run_trajectory("bowl", "sgd", lr=0.01, steps=100)
    mom = run_trajectory("bowl", "momentum", lr=0.01, steps=100, momentum=0.9)
    assert sgd.points.shape == (101, 2) and not sgd.diverged
    assert sgd.final_loss < sgd.losses[0] and mom.final_loss < sgd.final_loss


def test_saddle_escape_is_faster_with_adam_than_sgd() -> None:
    sgd = run_trajectory("saddle", "sgd", lr=0.05, steps=100)
    adam = run_trajectory("saddle", "adam", lr=0.05, steps=100)
    assert adam.final_loss < -0.2 < sgd.final_loss


def test_divergence_is_detected_and_plotted() -> None:
    t = run_trajectory("bowl", "sgd", lr=0.5, steps=200)  # lr > 2 / 25: unstable along y
    assert t.diverged and len(t.points) < 201
    fig = plot_trajectories("bowl", [t])
    assert "diverged" in " ".join(x.get_text() for x in fig.axes[0].get_legend().get_texts())
    with pytest.raises(ValueError, match="unknown surface"):
        run_trajectory("himmelblau", "sgd")


# --------------------------------------------------------------------------- search


def test_grid_for_and_best_so_far() -> None:
    grid = grid_for({"lr": (1e-4, 1e-1, "log"), "wd": (0.0, 1.0), "act": ["relu", "tanh"]}, 16)
    assert len(grid["lr"]) == len(grid["wd"]) == 3 and grid["act"] == ["relu", "tanh"]  # 3*3*2 >= 16
    assert math.isclose(grid["lr"][1], math.sqrt(1e-4 * 1e-1), rel_tol=1e-3)
    assert best_so_far([0.1, None, 0.3, float("nan"), 0.2]) == [0.1, 0.1, 0.3, 0.3, 0.3]
    with pytest.raises(ValueError, match="low < high"):
        grid_for({"lr": (1.0, 0.1)}, 4)
    with pytest.raises(ValueError, match="log range"):
        grid_for({"lr": (0.0, 1.0, "log")}, 4)


@pytest.mark.parametrize("method", ["grid", "random", "tpe"])
def test_every_method_spends_exactly_the_budget(method: str) -> None:
    study = run_search(lambda p, t: -(p["x"] - 0.7) ** 2 - (p["y"] - 0.2) ** 2, {"x": (0.0, 1.0), "y": (0.0, 1.0)},
                       method, n_trials=10, progress=False)
    assert len(study.trials) == 10
    assert study.best_value > -0.2


def test_tpe_focuses_on_the_good_region() -> None:
    f = lambda p, t: -abs(math.log10(p["lr"]) + 2)  # noqa: E731 - best at lr = 1e-2
    space = {"lr": (1e-6, 1.0, "log")}
    comp = compare_search(f, space, n_trials=30, methods=("random", "tpe"), seeds=(0, 1), progress=False)
    late = {m: np.mean([abs(math.log10(t.params["lr"]) + 2) for s in comp.studies[m] for t in s.trials[15:]])
            for m in ("random", "tpe")}
    assert late["tpe"] < late["random"]  # TPE's later trials sit closer to the optimum
    assert all(all(b >= a for a, b in zip(c, c[1:])) for cs in comp.curves.values() for c in cs)
    fig = plot_search(comp)
    assert fig.axes[0].get_xlabel() == "trials used"


def test_pruning_callback_stops_bad_trials_inside_the_trainer() -> None:
    from tutorlib.train import Trainer

    train, val = load_digits("train", limit=64), load_digits("val", limit=64)

    def objective(params, trial):
        model = MLP(64, [8], 10)
        opt = torch.optim.SGD(model.parameters(), lr=params["lr"])
        Trainer(model, opt, callbacks=[PruningCallback(trial)], progress=False, log=False).fit(train, val, epochs=3)
        return 1.0

    # a threshold no 1-epoch model reaches: every trial is pruned after its first epoch
    study = run_search(objective, {"lr": (1e-3, 1e-1, "log")}, "random", n_trials=2,
                       pruner=optuna.pruners.ThresholdPruner(lower=0.999), progress=False)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert all(len(t.intermediate_values) == 1 for t in study.trials)
    assert "2 of 2" in plot_pruning(study).axes[0].get_title()


# --------------------------------------------------------------------------- real training


def test_compare_optimizers_same_start_and_loss_falls() -> None:
    train, val = load_digits("train", limit=256), load_digits("val", limit=64)
    models: dict = {}
    runs = compare_optimizers(lambda: MLP(64, [32], 10), {"adam": 3e-3, "lamb": 3e-2, "sgd": 1e-9}, train, val, epochs=2,
                              batch_size=32, progress=False, models=models)
    assert set(runs) == {"adam", "lamb", "sgd"}
    for name in ("adam", "lamb"):
        assert runs[name]["train_loss"][-1] < runs[name]["train_loss"][0]
    # lr ~ 0 leaves the model where it started, so the start was the same for every optimizer
    assert math.isclose(runs["sgd"].steps[0]["loss"], runs["adam"].steps[0]["loss"], rel_tol=1e-6)
    assert weight_norm(models["adam"]) > 0
    assert len(plot_comparison(runs).axes) == 2


def test_adam_and_adamw_with_the_same_decay_end_differently() -> None:
    train = load_digits("train", limit=128)
    models: dict = {}
    compare_optimizers(lambda: MLP(64, [32], 10), {"adam": ("adam", {"lr": 1e-2, "weight_decay": 0.05}),
                                                   "adamw": ("adamw", {"lr": 1e-2, "weight_decay": 0.05})},
                       train, epochs=2, progress=False, models=models)
    assert abs(weight_norm(models["adam"]) - weight_norm(models["adamw"])) > 1e-3


def test_batch_size_sweep_covers_the_grid() -> None:
    res = batch_size_sweep(lambda: MLP(64, [16], 10), [16, 64], [0.05, 0.5], load_digits("train", limit=128),
                           load_digits("val", limit=64), epochs=1, progress=False)
    assert sorted(res) == [(16, 0.05), (16, 0.5), (64, 0.05), (64, 0.5)]
    assert all(0.0 <= v <= 1.0 for v in res.values())
    with pytest.raises(ValueError, match="at least one"):
        batch_size_sweep(lambda: MLP(64, [16], 10), [], [0.1], load_digits("train", limit=8), load_digits("val", limit=8))


def test_compare_optimizers_rejects_bad_specs() -> None:
    with pytest.raises(ValueError, match="empty"):
        compare_optimizers(lambda: MLP(64, [8], 10), {}, load_digits("train", limit=8))
    with pytest.raises(TypeError, match="optimizer spec"):
        compare_optimizers(lambda: MLP(64, [8], 10), {"x": "fast"}, load_digits("train", limit=8), progress=False)


def test_frozen_embeddings_are_mean_pooled_minilm() -> None:
    from tutorlib.data import load_reviews
    from tutorlib.models import MiniLMClassifier, load_tokenizer
    from tutorlib.optim.compare import frozen_embeddings

    data = load_reviews("val", limit=3)
    clf = MiniLMClassifier(freeze_encoder=True).eval()
    emb = frozen_embeddings(data, encoder=clf.encoder, progress=False)
    assert emb.tensors[0].shape == (3, 384) and emb.tensors[1].tolist() == data.labels
    tok = load_tokenizer()
    batch = tok(data.texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        want = clf.embed(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(emb.tensors[0], want, atol=1e-5, rtol=1e-4)
    with pytest.raises(TypeError, match="text, label"):
        frozen_embeddings(load_digits("val", limit=2), encoder=clf.encoder, progress=False)


# --------------------------------------------------------------------------- widgets


def test_trajectory_explorer_redraws_on_every_control() -> None:
    from tutorlib.optim.widgets import draw_trajectories, trajectory_explorer

    box = trajectory_explorer("bowl", ["sgd"])
    ex = box.explorer
    assert "tutorlib-widget" in box._dom_classes and ex.renders == 1
    ex.controls["steps"].value = 30
    assert ex.renders == 2 and len(ex.last["trajectories"][0].points) == 31
    ex.controls["optimizers"].value = ("sgd", "adam")
    assert [t.name for t in ex.last["trajectories"]] == ["sgd", "adam"]
    renders = ex.renders
    ex.controls["surface"].value = "saddle"  # resets rates/steps to the surface's, redraws once
    assert ex.renders == renders + 1 and ex.last["surface"] == "saddle"
    assert ex.controls["steps"].value == SURFACES["saddle"].steps
    ex.controls["sgd_lr"].value = 0.5
    assert ex.last["sgd_lr"] == 0.5
    ex.controls["optimizers"].value = ()
    assert ex.last["trajectories"] == []
    with pytest.raises(ValueError, match="unknown optimizer"):
        draw_trajectories("bowl", ["adamax"], 0.1, 0.1)


def test_schedule_explorer_redraws() -> None:
    from tutorlib.optim.widgets import schedule_explorer

    box = schedule_explorer()
    assert box.renders == 1
    box.controls["warmup_steps"].value = 50
    box.controls["schedules"].value = ("linear",)
    assert box.renders == 3
