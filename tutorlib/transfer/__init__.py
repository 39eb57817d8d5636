"""Transfer learning: freezing strategies (linear probe, top-k layers, full fine-tuning, layer-wise LR decay),
multi-task heads, evaluation beyond accuracy, and catastrophic forgetting on sentence similarity.

>>> from tutorlib.transfer import freeze, unfreeze_top, count_trainable, layerwise_lr_groups
>>> from torch import nn
>>> count_trainable(freeze(nn.Linear(4, 2)))
0
"""

from tutorlib.transfer.evaluate import (classification_report, expected_calibration_error, f1_from_confusion,
                                        per_group_results, plot_per_group, plot_reliability, reliability_bins,
                                        report_table)
from tutorlib.transfer.freeze import (count_trainable, encoder_layers, freeze, layer_depths, layerwise_lr_groups,
                                      unfreeze, unfreeze_top)
from tutorlib.transfer.multitask import (DOMAINS, TASKS, MultiTaskModel, MultiTaskReviews, UncertaintyWeights,
                                         domain_dataset, multitask_collate, multitask_loss, multitask_step)
from tutorlib.transfer.similarity import PARAPHRASES, embed_texts, paraphrase_pairs, paraphrase_retrieval, similarity_eval

__all__ = [
    "freeze", "unfreeze", "unfreeze_top", "count_trainable", "encoder_layers", "layer_depths",
    "layerwise_lr_groups",
    "DOMAINS", "TASKS", "MultiTaskReviews", "domain_dataset", "multitask_collate", "MultiTaskModel", "multitask_loss",
    "UncertaintyWeights", "multitask_step",
    "f1_from_confusion", "classification_report", "reliability_bins", "expected_calibration_error",
    "per_group_results", "plot_reliability", "plot_per_group", "report_table",
    "PARAPHRASES", "paraphrase_pairs", "embed_texts", "paraphrase_retrieval", "similarity_eval",
]
