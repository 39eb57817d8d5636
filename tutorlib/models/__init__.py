"""Shared model builders: MLP, small CNN, the pretrained MiniLM encoder + classifier head, a tiny GPT, the bundled LLM.

>>> from tutorlib.models import MLP, SmallCNN, MiniLMClassifier, TinyGPT, load_llm
"""

from tutorlib.models.gpt import ByteTokenizer, GPTConfig, TinyGPT
from tutorlib.models.minilm import (MiniLMClassifier, load_encoder, load_tokenizer, mean_pool, minilm_path,
                                    resolve_model_path)
from tutorlib.models.llm import (INSTALL_COMMAND, LLM_NAMES, LLMNotInstalled, bundled_gguf, chat_input_ids,
                                 dequantize_gguf, llm_cache_root, llm_cache_status, llm_path, load_llm,
                                 model_folder_kind, resolve_llm)
from tutorlib.models.mlp import MLP, SmallCNN

__all__ = ["MLP", "SmallCNN", "MiniLMClassifier", "load_encoder", "load_tokenizer", "mean_pool", "minilm_path",
           "resolve_model_path", "TinyGPT", "GPTConfig", "ByteTokenizer", "load_llm", "llm_path", "bundled_gguf",
           "llm_cache_root", "llm_cache_status", "dequantize_gguf", "chat_input_ids", "model_folder_kind", "resolve_llm",
           "LLM_NAMES",
           "INSTALL_COMMAND", "LLMNotInstalled"]
