"""Fine-tune the course's text classifier (or a causal LM) on your own file, and classify new texts with it.

The library used on its own: ``tutorlib finetune --data FILE --text-col C --label-col C``,
``tutorlib predict --model DIR "some text"``, and supervised fine-tuning of a causal language model on
prompt/completion JSONL with ``tutorlib finetune --task causal-lm`` (loss on the completion tokens only). This package is an application layer on top of the
core (``Trainer``, the MiniLM) and of :mod:`tutorlib.peft` (which builds each method).

>>> from tutorlib.finetune import FinetuneConfig, finetune, Predictor, read_table
"""

from tutorlib.finetune.io import (DataFileError, LabeledTexts, TextClassificationDataset, check_classes, encode_labels,
                                  label_names, read_table, split_train_val)
from tutorlib.finetune.generate import Generator, read_prompts
from tutorlib.finetune.predict import Predictor, format_prediction, predict_file
from tutorlib.finetune.run import TASKS, FinetuneConfig, finetune, register_task

__all__ = [
    "FinetuneConfig", "finetune", "TASKS", "register_task", "Predictor", "format_prediction", "predict_file",
    "read_table", "DataFileError", "LabeledTexts", "TextClassificationDataset", "check_classes", "encode_labels",
    "label_names", "split_train_val", "Generator", "read_prompts",
]
