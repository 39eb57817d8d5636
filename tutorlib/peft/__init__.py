"""Parameter-efficient fine-tuning: LoRA and bottleneck adapters from scratch, every ``peft`` method on the
course's MiniLM classifier, adapter artefacts, and the comparison table of lesson 06.

>>> from tutorlib.peft import LoRALinear, inject_lora, merge_lora, build_model, compare_methods
"""

from tutorlib.peft.adapters import PLACEMENTS, AdaptedLinear, BottleneckAdapter, adapter_layers, inject_adapters
from tutorlib.peft.compare import (METHOD_LABELS, EpochTimer, MethodResult, compare_methods,
                                   measure_training_memory, plot_comparison, results_table)
from tutorlib.peft.lora import (LoRALinear, find_linear_names, inject_lora, load_lora_state_dict,
                                lora_layers, lora_parameter_count, lora_state_dict, merge_lora, unload_lora,
                                unmerge_lora)
from tutorlib.peft.methods import (DEFAULT_LR, METHODS, PEFT_LIBRARY_METHODS, MethodConfig, PromptMiniLMClassifier,
                                   build_model, load_trained, read_config, save_trained, uses_peft)

__all__ = [
    "LoRALinear", "inject_lora", "merge_lora", "unmerge_lora", "unload_lora", "lora_layers", "lora_state_dict",
    "load_lora_state_dict", "lora_parameter_count", "find_linear_names",
    "BottleneckAdapter", "AdaptedLinear", "inject_adapters", "adapter_layers", "PLACEMENTS",
    "METHODS", "PEFT_LIBRARY_METHODS", "DEFAULT_LR", "MethodConfig", "PromptMiniLMClassifier", "build_model",
    "save_trained", "load_trained", "read_config", "uses_peft",
    "measure_training_memory", "EpochTimer", "MethodResult", "compare_methods",
    "results_table", "plot_comparison", "METHOD_LABELS",
]
