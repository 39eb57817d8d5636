"""Shared model builders: MLP, small CNN, the pretrained MiniLM encoder + classifier head, a tiny GPT.

>>> from tutorlib.models import MLP, SmallCNN, MiniLMClassifier, TinyGPT
"""

from tutorlib.models.gpt import ByteTokenizer, GPTConfig, TinyGPT
from tutorlib.models.minilm import (MiniLMClassifier, load_encoder, load_tokenizer, mean_pool, minilm_path,
                                    resolve_model_path)
from tutorlib.models.mlp import MLP, SmallCNN
from tutorlib.models.params import ParameterCount, count_parameters, trainable_summary

__all__ = ["MLP", "SmallCNN", "MiniLMClassifier", "load_encoder", "load_tokenizer", "mean_pool", "minilm_path",
           "resolve_model_path", "TinyGPT", "GPTConfig", "ByteTokenizer", "ParameterCount", "count_parameters",
           "trainable_summary"]
