"""Optimizers and schedules (lesson 01): from-scratch SGD-momentum/Adam/LAMB, schedules, LR range test, 2-D surfaces.

Search (Optuna) lives in :mod:`tutorlib.optim.search` and the widgets in :mod:`tutorlib.optim.widgets`;
they are imported on demand so that ``import tutorlib.optim`` stays light.

>>> from tutorlib.optim import LAMB, make_optimizer, warmup_cosine, make_scheduler, lr_find
"""
from tutorlib.optim.compare import (batch_size_sweep, compare_optimizers, frozen_embeddings, plot_batch_size_sweep,
                                    plot_comparison, weight_norm)
from tutorlib.optim.lr_find import LRFindResult, lr_find, suggest_lr
from tutorlib.optim.optimizers import (OPTIMIZER_NAMES, LAMB, Adam, SGDMomentum, adam_step, lamb_step,
                                       make_optimizer, sgd_momentum_step)
from tutorlib.optim.schedules import (SCHEDULE_NAMES, lr_trace, make_scheduler, plot_schedules, scheduler_factory,
                                      warmup_cosine)
from tutorlib.optim.surfaces import SURFACES, Surface, Trajectory, plot_trajectories, run_trajectory

__all__ = [
    "OPTIMIZER_NAMES", "LAMB", "Adam", "SGDMomentum", "adam_step", "lamb_step", "make_optimizer", "sgd_momentum_step",
    "SCHEDULE_NAMES", "lr_trace", "make_scheduler", "plot_schedules", "scheduler_factory", "warmup_cosine",
    "LRFindResult", "lr_find", "suggest_lr", "SURFACES", "Surface", "Trajectory", "plot_trajectories", "run_trajectory",
    "batch_size_sweep", "compare_optimizers", "frozen_embeddings", "plot_batch_size_sweep", "plot_comparison",
    "weight_norm",
]
