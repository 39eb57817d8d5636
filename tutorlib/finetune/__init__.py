"""Fine-tune the course's text classifier (or a causal LM) on your own file, and classify new texts with it.

The library used on its own: ``tutorlib finetune --data FILE --text-col C --label-col C``,
``tutorlib predict --model DIR "some text"``, and supervised fine-tuning of a causal language model on
prompt/completion JSONL with ``tutorlib finetune --task causal-lm`` (loss on the completion tokens only). This package is an application layer on top of the
core (``Trainer``, the MiniLM) and of :mod:`tutorlib.peft` (which builds each method).

>>> from tutorlib.finetune import FinetuneConfig, finetune, Predictor, read_table
"""

from tutorlib.command import lazy_exports

# The names below are imported when first used (PEP 562), so that `tutorlib finetune --help` and its
# usage errors do not pay for importing torch.
_EXPORTS = {
    "DataFileError": "io", "LabeledTexts": "io", "TextClassificationDataset": "io", "check_classes": "io",
    "encode_labels": "io", "label_names": "io", "read_table": "io", "split_train_val": "io",
    "Generator": "generate", "read_prompts": "generate",
    "Predictor": "predict", "format_prediction": "predict", "predict_file": "predict",
    "TASKS": "run", "FinetuneConfig": "run", "finetune": "run", "register_task": "run",
}


__getattr__ = lazy_exports("tutorlib.finetune", _EXPORTS)

__all__ = [
    "FinetuneConfig", "finetune", "TASKS", "register_task", "Predictor", "format_prediction", "predict_file",
    "read_table", "DataFileError", "LabeledTexts", "TextClassificationDataset", "check_classes", "encode_labels",
    "label_names", "split_train_val", "Generator", "read_prompts",
]
