"""The one driver behind ``tutorlib finetune``: pick the task's plug-in and run it.

A task is a module with ``run(config) -> metrics dict`` that reads its data (every file problem reported
before the model loads), builds its model, trains with the shared :class:`tutorlib.train.Trainer` and
writes its artefacts to ``--out``. The plug-ins are :mod:`~tutorlib.finetune.classification`,
:mod:`~tutorlib.finetune.causal_lm` (SFT) and :mod:`~tutorlib.finetune.preference` (DPO); they share
:mod:`~tutorlib.finetune.common` and the options of :mod:`~tutorlib.finetune.options`, and none of them
imports this module, so there is no import cycle. A plug-in is imported only when its task runs.

>>> sorted(TASKS)
['causal-lm', 'classification', 'preference']
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from tutorlib.finetune.common import examples_per_process
from tutorlib.finetune.options import DEFAULT_EPOCHS, TASK_NAMES, FinetuneConfig

__all__ = ["FinetuneConfig", "finetune", "TASKS", "PLUGINS", "register_task", "DEFAULT_EPOCHS",
           "examples_per_process"]

#: The module of each built-in task; its ``run(config)`` does the work.
PLUGINS = {"classification": "tutorlib.finetune.classification", "causal-lm": "tutorlib.finetune.causal_lm",
           "preference": "tutorlib.finetune.preference"}

TaskFn = Callable[[FinetuneConfig], dict]


def _plugin(module: str) -> TaskFn:
    def run(config: FinetuneConfig) -> dict:
        return importlib.import_module(module).run(config)

    run.__name__ = run.__qualname__ = f"run_{module.rsplit('.', 1)[-1]}"
    return run


TASKS: dict[str, TaskFn] = {name: _plugin(PLUGINS[name]) for name in TASK_NAMES}


def register_task(name: str) -> Callable[[TaskFn], TaskFn]:
    """Decorator adding a task (``--task NAME`` from Python; the CLI lists :data:`TASK_NAMES`) to :data:`TASKS`.

    >>> @register_task("echo")
    ... def echo(config): return {"data": config.data}
    >>> finetune(FinetuneConfig(data="x.csv", task="echo")); del TASKS["echo"]
    {'data': 'x.csv'}
    """
    def deco(fn: TaskFn) -> TaskFn:
        TASKS[name] = fn
        return fn

    return deco


def finetune(config: FinetuneConfig) -> dict[str, Any]:
    """Run one fine-tuning job described by ``config``; returns the metrics also written to ``metrics.json``.

    >>> finetune(FinetuneConfig(data="x.csv", task="translation"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown task 'translation': ...
    """
    if config.task not in TASKS:
        raise ValueError(f"unknown task {config.task!r}: available {sorted(TASKS)}")
    return TASKS[config.task](config)
