"""Hyperparameter search at an equal budget of trials: grid vs random vs Optuna's TPE, plus pruning.

All three methods run through Optuna so that they differ *only* in how the next configuration is
chosen: ``GridSampler`` (an evenly spaced grid, visited in random order and cut at the budget),
``RandomSampler`` and ``TPESampler`` (Bergstra et al., 2011: model good and bad trials, sample
where good ones are likelier). A search space is a dict of ``name -> (low, high)``,
``(low, high, "log")`` or a list of choices. An objective is ``f(params, trial) -> score``
(higher is better); it may report intermediate scores to the trial for pruning, which
:class:`PruningCallback` does from inside :class:`tutorlib.train.Trainer`.

>>> space = {"x": (-3.0, 3.0)}
>>> study = run_search(lambda p, t: -(p["x"] - 1) ** 2, space, "tpe", n_trials=15, progress=False)
>>> abs(study.best_params["x"] - 1) < 1.0
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from tutorlib.train import Callback, Trainer

__all__ = [
    "SearchSpace",
    "suggest",
    "grid_for",
    "make_sampler",
    "run_search",
    "best_so_far",
    "compare_search",
    "SearchComparison",
    "plot_search",
    "plot_search_points",
    "PruningCallback",
    "digits_objective",
    "plot_pruning",
    "METHODS",
]

SearchSpace = dict[str, Any]
Objective = Callable[[dict[str, Any], optuna.Trial], float]

#: Search methods :func:`make_sampler` knows.
METHODS = ("grid", "random", "tpe")


def _parse(name: str, spec: Any) -> tuple[str, Any]:
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"search space entry {name!r} is an empty list of choices")
        return "choice", spec
    if isinstance(spec, tuple) and len(spec) in (2, 3):
        low, high = spec[0], spec[1]
        log = len(spec) == 3 and spec[2] == "log"
        if len(spec) == 3 and spec[2] not in ("log", "linear"):
            raise ValueError(f"search space entry {name!r}: the third item must be 'log' or 'linear', got {spec[2]!r}")
        if not low < high:
            raise ValueError(f"search space entry {name!r}: need low < high, got {spec}")
        if log and low <= 0:
            raise ValueError(f"search space entry {name!r}: a log range needs low > 0, got {low}")
        kind = "int" if isinstance(low, int) and isinstance(high, int) else "float"
        return kind, (low, high, log)
    raise ValueError(f"search space entry {name!r} must be (low, high), (low, high, 'log') or a list, got {spec!r}")


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Ask ``trial`` for one value of each entry of ``space``.

    >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    >>> sorted(suggest(study.ask(), {"lr": (1e-4, 1.0, "log"), "act": ["relu", "tanh"]}))
    ['act', 'lr']
    """
    params: dict[str, Any] = {}
    for name, spec in space.items():
        kind, value = _parse(name, spec)
        if kind == "choice":
            params[name] = trial.suggest_categorical(name, value)
        elif kind == "int":
            params[name] = trial.suggest_int(name, value[0], value[1], log=value[2])
        else:
            params[name] = trial.suggest_float(name, value[0], value[1], log=value[2])
    return params


def grid_for(space: SearchSpace, n_trials: int) -> dict[str, list[Any]]:
    """An evenly spaced grid over ``space`` with about ``n_trials`` points (at least that many).

    Continuous entries get ``k`` values each, ``k`` the smallest integer with ``k ** d >= n_trials``
    over the ``d`` continuous entries (after the choices' combinations are counted); log ranges
    are spaced evenly in log.

    >>> grid_for({"lr": (1e-3, 1e-1, "log"), "wd": (0.0, 1.0)}, 9)["lr"]
    [0.001, 0.01, 0.1]
    """
    parsed = {n: _parse(n, s) for n, s in space.items()}
    choices = math.prod(len(v) for k, v in parsed.values() if k == "choice")
    d = sum(1 for k, _ in parsed.values() if k != "choice")
    k = 1
    if d:
        while k**d * choices < n_trials:
            k += 1
    grid: dict[str, list[Any]] = {}
    for name, (kind, value) in parsed.items():
        if kind == "choice":
            grid[name] = list(value)
            continue
        low, high, log = value
        pts = np.logspace(np.log10(low), np.log10(high), k) if log else np.linspace(low, high, k)
        if k == 1:
            pts = np.array([math.sqrt(low * high) if log else (low + high) / 2])
        if kind == "int":
            grid[name] = sorted({int(round(float(p))) for p in pts})
        else:
            grid[name] = [float(f"{float(p):.6g}") for p in pts]
    return grid


def make_sampler(method: str, space: SearchSpace, n_trials: int, seed: int = 0) -> optuna.samplers.BaseSampler:
    """The Optuna sampler for ``method`` ('grid', 'random' or 'tpe'), seeded.

    TPE starts with ``max(2, n_trials // 4)`` random trials (at most 10, Optuna's default) so that
    small budgets leave it guided trials.

    >>> type(make_sampler("grid", {"x": (0.0, 1.0)}, 4)).__name__
    'GridSampler'
    """
    if method == "grid":
        return optuna.samplers.GridSampler(grid_for(space, n_trials), seed=seed)
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if method == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, n_trials // 4)))
    raise ValueError(f"unknown search method {method!r}: use one of {', '.join(METHODS)}")


def run_search(objective: Objective, space: SearchSpace, method: str = "tpe", n_trials: int = 20, seed: int = 0,
               pruner: optuna.pruners.BasePruner | None = None, progress: bool = True) -> optuna.Study:
    """Maximise ``objective(params, trial)`` over ``space`` for exactly ``n_trials`` trials with ``method``.

    A trial that raises ``optuna.TrialPruned`` counts as pruned (its budget is still spent).

    >>> s = run_search(lambda p, t: p["x"], {"x": (0.0, 1.0)}, "grid", n_trials=4, progress=False)
    >>> len(s.trials), round(s.best_value, 3)
    (4, 1.0)
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if not callable(objective):
        raise TypeError("objective must be a function f(params, trial) -> score")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = make_sampler(method, space, n_trials, seed)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner or optuna.pruners.NopPruner())
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_trials, desc=f"{method} search", leave=False)

    def wrapped(trial: optuna.Trial) -> float:
        t0 = time.perf_counter()
        try:
            score = float(objective(suggest(trial, space), trial))
        finally:
            trial.set_user_attr("seconds", time.perf_counter() - t0)
            if bar is not None:
                bar.update(1)
        if not math.isfinite(score):
            raise optuna.TrialPruned(f"non-finite score {score}")
        return score

    # GridSampler stops the study once its grid is exhausted; the grid has >= n_trials points.
    study.optimize(wrapped, n_trials=n_trials, catch=())
    if bar is not None:
        bar.close()
    return study


def best_so_far(values: Sequence[float | None]) -> list[float]:
    """Running maximum of trial scores (``None``/NaN, e.g. pruned trials, keep the previous best).

    >>> best_so_far([0.2, None, 0.5, 0.4])
    [0.2, 0.2, 0.5, 0.5]
    """
    out, best = [], -math.inf
    for v in values:
        if v is not None and math.isfinite(v):
            best = max(best, v)
        out.append(best if math.isfinite(best) else float("nan"))
    return out


def _scores(study: optuna.Study) -> list[float | None]:
    return [t.value if t.state == optuna.trial.TrialState.COMPLETE else None for t in study.trials]


@dataclass
class SearchComparison:
    """Studies per method (one per seed) and their best-so-far curves.

    >>> c = SearchComparison({"random": [[0.1, 0.3]]}, {}, 2)
    >>> c.final_best()["random"]
    0.3
    """

    curves: dict[str, list[list[float]]]
    studies: dict[str, list[optuna.Study]] = field(default_factory=dict)
    n_trials: int = 0

    def mean_curve(self, method: str) -> np.ndarray:
        """Mean best-so-far score after each trial, over seeds."""
        return np.nanmean(np.asarray(self.curves[method], dtype=float), axis=0)

    def final_best(self) -> dict[str, float]:
        """Mean (over seeds) best score after the whole budget, per method."""
        return {m: float(self.mean_curve(m)[-1]) for m in self.curves}

    def trials_to_reach(self, target: float) -> dict[str, float]:
        """Mean number of trials each method needed to reach ``target`` (NaN if a seed never did)."""
        out = {}
        for m, curves in self.curves.items():
            hits = []
            for c in curves:
                idx = [i for i, v in enumerate(c) if v >= target]
                hits.append(idx[0] + 1 if idx else math.nan)
            out[m] = float(np.mean(hits))
        return out


def compare_search(objective: Objective, space: SearchSpace, n_trials: int = 20,
                   methods: Sequence[str] = METHODS, seeds: Sequence[int] = (0,), progress: bool = True
                   ) -> SearchComparison:
    """Run every method with the same budget ``n_trials`` for each seed; collect best-so-far curves.

    >>> c = compare_search(lambda p, t: -abs(p["x"] - 0.3), {"x": (0.0, 1.0)}, n_trials=6, progress=False)
    >>> sorted(c.curves)
    ['grid', 'random', 'tpe']
    """
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    curves: dict[str, list[list[float]]] = {}
    studies: dict[str, list[optuna.Study]] = {}
    for method in methods:
        for seed in seeds:
            study = run_search(objective, space, method, n_trials, seed, progress=progress)
            studies.setdefault(method, []).append(study)
            curves.setdefault(method, []).append(best_so_far(_scores(study)))
    return SearchComparison(curves, studies, n_trials)


def plot_search(comparison: SearchComparison, ax: Any = None, ylabel: str = "best validation accuracy so far"):
    """Best score so far against the number of trials, one line per method (band = min–max over seeds).

    >>> import matplotlib; matplotlib.use("Agg")
    >>> fig = plot_search(SearchComparison({"grid": [[0.1, 0.2]], "tpe": [[0.1, 0.3]]}, {}, 2))
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    for k, (method, curves) in enumerate(comparison.curves.items()):
        arr = np.asarray(curves, dtype=float)
        xs = np.arange(1, arr.shape[1] + 1)
        ax.plot(xs, np.nanmean(arr, axis=0), "-o", ms=3, color=f"C{k}", label=method)
        if arr.shape[0] > 1:
            ax.fill_between(xs, np.nanmin(arr, axis=0), np.nanmax(arr, axis=0), color=f"C{k}", alpha=0.15)
    seeds = len(next(iter(comparison.curves.values())))
    ax.set_xlabel("trials used")
    ax.set_ylabel(ylabel)
    ax.set_title(f"Search at an equal budget (mean over {seeds} seed{'s' if seeds > 1 else ''})")
    ax.legend()
    ax.figure.tight_layout()
    return ax.figure


def plot_search_points(comparison: SearchComparison, x: str, y: str, seed_index: int = 0, log: Sequence[str] = ()):
    """Where each method sampled in the (``x``, ``y``) plane, coloured by score; returns the figure.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> c = compare_search(lambda p, t: p["a"] + p["b"], {"a": (0.0, 1.0), "b": (0.0, 1.0)}, 4, progress=False)
    >>> fig = plot_search_points(c, "a", "b")
    """
    import matplotlib.pyplot as plt

    methods = list(comparison.studies)
    if not methods:
        raise ValueError("this comparison holds no studies (curves only): run compare_search to get them")
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.8), squeeze=False, sharex=True,
                             sharey=True, constrained_layout=True)
    done = [t for m in methods for t in comparison.studies[m][seed_index].trials if t.value is not None]
    vmin = min((t.value for t in done), default=0.0)
    vmax = max((t.value for t in done), default=1.0)
    for ax, method in zip(axes[0], methods):
        trials = comparison.studies[method][seed_index].trials
        xs = [t.params[x] for t in trials]
        ys = [t.params[y] for t in trials]
        cs = [t.value if t.value is not None else np.nan for t in trials]
        sc = ax.scatter(xs, ys, c=cs, cmap="viridis", vmin=vmin, vmax=vmax, s=40, edgecolors="k", linewidths=0.4)
        if x in log:
            ax.set_xscale("log")
        if y in log:
            ax.set_yscale("log")
        ax.set_xlabel(x)
        ax.set_title(f"{method}: {len(trials)} trials")
    axes[0][0].set_ylabel(y)
    fig.colorbar(sc, ax=list(axes[0]), label="score")
    fig.suptitle("Where each method looked")
    return fig


class PruningCallback(Callback):
    """Report ``monitor`` to an Optuna trial after every epoch and stop a trial the pruner calls hopeless.

    Raises ``optuna.TrialPruned`` out of ``Trainer.fit``; Optuna records the trial as pruned.

    >>> study = optuna.create_study(direction="maximize")
    >>> cb = PruningCallback(study.ask(), "val_accuracy")
    """

    def __init__(self, trial: optuna.Trial, monitor: str = "val_accuracy") -> None:
        self.trial, self.monitor = trial, monitor

    def on_epoch_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        if self.monitor not in logs:
            raise KeyError(f"PruningCallback monitors {self.monitor!r} but the logs have {sorted(logs)}: pass val_data")
        self.trial.report(float(logs[self.monitor]), step=int(logs["epoch"]))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {int(logs['epoch']) + 1}")


def digits_objective(train: Any, val: Any, epochs: int = 8, hidden: Sequence[int] = (64,), batch_size: int = 64,
                     device: Any = None) -> Objective:
    """An objective for the digits MLP trained with SGD+momentum: params ``lr`` and ``weight_decay``.

    Returns the last epoch's validation accuracy; reports each epoch's to the trial (for pruning).
    Every trial starts from the same seed, so only the hyperparameters differ.

    >>> from tutorlib.data import load_digits
    >>> f = digits_objective(load_digits("train", limit=64), load_digits("val", limit=64), epochs=1)
    >>> study = optuna.create_study(direction="maximize")
    >>> 0.0 <= f({"lr": 0.1, "weight_decay": 1e-4}, study.ask()) <= 1.0
    True
    """
    import torch

    from tutorlib.models import MLP
    from tutorlib.runtime import seed_everything

    def objective(params: dict[str, Any], trial: optuna.Trial) -> float:
        seed_everything(0)
        model = MLP(64, list(hidden), 10)
        opt = torch.optim.SGD(model.parameters(), lr=params["lr"], momentum=0.9,
                              weight_decay=params.get("weight_decay", 0.0))
        trainer = Trainer(model, opt, batch_size=batch_size, device=device, callbacks=[PruningCallback(trial)],
                          progress=False, log=False)
        try:
            history = trainer.fit(train, val, epochs=epochs)
        except optuna.TrialPruned:
            raise
        except FloatingPointError:  # the loss blew up: this configuration is simply bad
            return 0.0
        return float(history["val_accuracy"][-1])

    return objective


def plot_pruning(study: optuna.Study, ax: Any = None, ylabel: str = "validation accuracy"):
    """Each trial's reported score per epoch: finished trials solid, pruned ones dashed red; returns the figure.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> s = optuna.create_study(direction="maximize"); t = s.ask(); t.report(0.5, 0); s.tell(t, 0.5)
    FrozenTrial(...)
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    pruned_label = done_label = False
    for t in study.trials:
        steps = sorted(t.intermediate_values)
        if not steps:
            continue
        vals = [t.intermediate_values[s] for s in steps]
        xs = [s + 1 for s in steps]
        if t.state == optuna.trial.TrialState.PRUNED:
            ax.plot(xs, vals, "--", color="C3", alpha=0.7, label=None if pruned_label else "pruned")
            pruned_label = True
        else:
            ax.plot(xs, vals, "-", color="C0", alpha=0.7, label=None if done_label else "completed")
            done_label = True
    n_pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(f"Pruning: {n_pruned} of {len(study.trials)} trials stopped early")
    if pruned_label or done_label:
        ax.legend()
    ax.figure.tight_layout()
    return ax.figure
