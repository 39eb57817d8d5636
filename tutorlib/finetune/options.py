"""The options of ``tutorlib finetune`` that the command line needs before anything heavy is imported.

The driver (:mod:`tutorlib.finetune.run`) and the parser (:mod:`tutorlib.finetune.cli`) both read them
from here, so the choices are declared once and ``tutorlib finetune --help`` or a usage error answers
without importing torch.

>>> "causal-lm" in TASK_NAMES and "lora" in METHOD_NAMES
True
"""

from __future__ import annotations

__all__ = ["DEFAULT_EPOCHS", "TASK_NAMES", "METHOD_NAMES"]

#: Epochs when ``--epochs`` is not given.
DEFAULT_EPOCHS = 3
#: Tasks with a plug-in in :data:`tutorlib.finetune.run.TASKS`.
TASK_NAMES = ("classification", "causal-lm")
#: Fine-tuning methods of the classification task (built by :func:`tutorlib.peft.build_model`).
METHOD_NAMES = ("head", "full", "lora", "dora", "ia3", "prefix", "prompt", "houlsby", "pfeiffer", "lora-ours")
