"""Efficient training: number formats, mixed precision, gradient accumulation, activation checkpointing,
``torch.compile``, measured throughput / peak memory / MFU, and data-parallel training under ``torchrun``.

>>> from tutorlib.efficient import measure, get_format, amp_train_step, accumulation_step
>>> get_format("bf16").exponent_bits
8
"""

from tutorlib.efficient.accumulate import accumulation_step, split_micro_batches
from tutorlib.efficient.amp import amp_train_step, collect_gradients, gradient_precision_report
from tutorlib.efficient.checkpointing import (CheckpointWrapper, checkpointed_sequential, disable_activation_checkpointing,
                                              enable_activation_checkpointing, saved_activation_bytes)
from tutorlib.efficient.formats import (FORMATS, NumberFormat, format_table, get_format, overflow_fraction,
                                        representation_error, round_mantissa, round_to, smallest_safe_scale,
                                        underflow_fraction)
from tutorlib.efficient.measure import (GPU_PEAK_TFLOPS, Measurement, RSSSampler, count_flops,
                                        current_rss_mb, device_peak_flops, matmul_peak_flops, measure, mfu,
                                        transformer_train_flops)
from tutorlib.efficient.techniques import (DEFAULT_TECHNIQUES, Technique, benchmark_techniques, lm_dataset, lm_loss,
                                           techniques_table)

__all__ = [
    "FORMATS", "NumberFormat", "format_table", "get_format", "round_mantissa", "round_to", "representation_error",
    "underflow_fraction", "overflow_fraction", "smallest_safe_scale",
    "amp_train_step", "collect_gradients", "gradient_precision_report",
    "accumulation_step", "split_micro_batches",
    "CheckpointWrapper", "checkpointed_sequential", "enable_activation_checkpointing",
    "disable_activation_checkpointing", "saved_activation_bytes",
    "Measurement", "measure", "RSSSampler", "current_rss_mb", "transformer_train_flops", "count_flops",
    "mfu", "GPU_PEAK_TFLOPS", "device_peak_flops", "matmul_peak_flops",
    "Technique", "DEFAULT_TECHNIQUES", "benchmark_techniques", "lm_dataset", "lm_loss", "techniques_table",
]
