"""Model compression: pruning, int8 quantization, knowledge distillation, and measuring what they buy.

- :mod:`.prune`: magnitude pruning with masks that survive training, ``torch.nn.utils.prune`` for
  comparison, structured removal of neurons, attention heads and conv channels.
- :mod:`.quantize`: affine int8 from scratch (scale, zero point, per-tensor/per-channel), fake
  quantization and QAT, torchao's ``quantize_`` and the legacy ``torch.ao`` dynamic quantization.
- :mod:`.distill`: the distillation loss, a ``step_fn`` for the Trainer, a small BERT student.
- :mod:`.measure`: parameters, non-zeros, bytes, latency, accuracy; Pareto front.
- :mod:`.widgets`: the sparsity explorer.

>>> from tutorlib.compress import prune_magnitude, quantize, distillation_loss, measure
"""

from tutorlib.compress.distill import (IGNORE_INDEX, DistillDataset, DistillStep, augment_texts, distill_collate,
                                       distillation_loss, init_student_from_teacher, make_student, teacher_logits)
from tutorlib.compress.measure import (MATMUL_OPS, Measurement, accuracy_of, amdahl_speedup, compare_latency,
                                       correct_of, count_weights, latency_ms, matmul_share, measure,
                                       measurements_table, model_bytes, paired_difference, pareto_front, plot_variants,
                                       retime, serialized_bytes, smallest_above, time_by_op)
from tutorlib.compress.prune import (DEFAULT_TYPES, MaskParametrization, apply_masks, bert_layers,
                                     global_magnitude_masks, head_scores, is_pruned, layer_sparsities, magnitude_mask,
                                     make_permanent, neuron_scores, prune_attention_heads, prune_ffn_neurons,
                                     prune_magnitude, remove_attention_heads, remove_conv_channels, remove_neurons,
                                     select_layers, shrink_linear_pair, shrink_small_cnn, sparse_size_bytes,
                                     torch_prune, weight_sparsity)
from tutorlib.compress.quantize import (INT8_RANGE, FakeQuantize, QATLayer, calibrate, cpu_int8_support, dequantize,
                                        fake_quantize, fold_batchnorm, int8_state_dict, observing, pack_int4, prepare_qat,
                                        qparams, qrange, quantization_error, quantize, quantize_legacy,
                                        quantize_torchao)
from tutorlib.compress.widgets import SparsityExplorer, prune_and_measure, sparsity_explorer

__all__ = [
    # prune
    "DEFAULT_TYPES", "select_layers", "magnitude_mask", "global_magnitude_masks", "MaskParametrization", "apply_masks",
    "prune_magnitude", "make_permanent", "is_pruned", "weight_sparsity", "layer_sparsities", "torch_prune",
    "sparse_size_bytes", "neuron_scores", "remove_neurons", "shrink_linear_pair", "bert_layers", "prune_ffn_neurons",
    "head_scores", "remove_attention_heads", "prune_attention_heads", "remove_conv_channels", "shrink_small_cnn",
    # quantize
    "INT8_RANGE", "qrange", "qparams", "quantize", "dequantize", "fake_quantize", "quantization_error",
    "fold_batchnorm", "FakeQuantize", "QATLayer", "prepare_qat", "observing", "calibrate", "pack_int4", "int8_state_dict",
    "quantize_torchao", "quantize_legacy", "cpu_int8_support",
    # distill
    "IGNORE_INDEX", "distillation_loss", "DistillStep", "DistillDataset", "distill_collate", "teacher_logits",
    "make_student", "init_student_from_teacher", "augment_texts",
    # measure
    "Measurement", "count_weights", "model_bytes", "serialized_bytes", "latency_ms", "compare_latency", "retime", "accuracy_of", "correct_of", "paired_difference", "measure",
    "MATMUL_OPS", "time_by_op", "matmul_share", "amdahl_speedup",
    "pareto_front", "smallest_above", "measurements_table", "plot_variants",
    # widgets
    "prune_and_measure", "SparsityExplorer", "sparsity_explorer",
]
