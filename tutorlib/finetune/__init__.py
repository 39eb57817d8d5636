"""Fine-tune the course's text classifier or a causal LM on your own file, and use the result.

The library used on its own: ``tutorlib finetune --data FILE --text-col C --label-col C`` and
``tutorlib predict --model DIR "some text"`` (classification); ``tutorlib finetune --task causal-lm``
(LoRA SFT on prompt/completion or chat JSONL, loss on the answer tokens only) and ``--task preference``
(DPO on prompt/chosen/rejected pairs), then ``tutorlib generate --model DIR``. One driver
(:mod:`~tutorlib.finetune.run`) dispatches to one plug-in per task; the options are declared once
(:mod:`~tutorlib.finetune.options`). This package is an application layer on top of the core
(``Trainer``, the MiniLM, the bundled SmolLM2), :mod:`tutorlib.peft` and :mod:`tutorlib.llm`.

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
    "TASKS": "run", "PLUGINS": "run", "FinetuneConfig": "options", "finetune": "run", "register_task": "run",
}


__getattr__ = lazy_exports("tutorlib.finetune", _EXPORTS)

__all__ = [
    "FinetuneConfig", "finetune", "TASKS", "PLUGINS", "register_task", "Predictor", "format_prediction", "predict_file",
    "read_table", "DataFileError", "LabeledTexts", "TextClassificationDataset", "check_classes", "encode_labels",
    "label_names", "split_train_val", "Generator", "read_prompts",
]
