"""The LLM track: inside a Transformer LLM, generation and LLM applications.

- :mod:`~tutorlib.llm.layers`: RMSNorm, RoPE, grouped-query causal attention, SwiGLU from scratch;
- :mod:`~tutorlib.llm.llama`: a Llama-style decoder from scratch that loads a ``transformers`` Llama's
  weights (the bundled SmolLM2) and gives the same logits; greedy :func:`~tutorlib.llm.llama.generate`;
- :mod:`~tutorlib.llm.kv_cache`: the KV cache, its size in bytes, uncached-vs-cached step timings;
- :mod:`~tutorlib.llm.bpe`: byte-level BPE tokenization from scratch;
- :mod:`~tutorlib.llm.evaluate`: bits per byte, a score comparable across tokenizers;
- :mod:`~tutorlib.llm.pretrain`: pretrain the TinyGPT on the code corpus, tracking perplexity and samples;
- :mod:`~tutorlib.llm.decoding`: greedy, beam search, temperature, top-k, top-p, repetition
  penalty from scratch (checked against ``transformers``' ``generate``);
- :mod:`~tutorlib.llm.hf`: the TinyGPT as a Hugging Face ``GPT2LMHeadModel`` + tokenizer;
- :mod:`~tutorlib.llm.dialogue`: a chat loop within a token budget (a real chat model's tokens too), long-term
  memory in SQLite, a recall test;
- :mod:`~tutorlib.llm.tools`: tool schemas from Python functions, parsing ``<tool_call>`` replies, an agent loop;
- :mod:`~tutorlib.llm.prompting`: zero-/few-shot chat prompts and batched answers (lesson 11's baselines);
- :mod:`~tutorlib.llm.constrained`: schema-constrained JSON decoding;
- :mod:`~tutorlib.llm.structured`: JSON field scores, paired gains, the majority and MiniLM-classifier baselines;
- :mod:`~tutorlib.llm.sft`: chat examples with the loss on assistant tokens, length buckets, LoRA SFT;
- :mod:`~tutorlib.llm.preference`: DPO from scratch (checked against ``trl``), reference log-probs once;
- :mod:`~tutorlib.llm.nf4`: NF4 4-bit weights from scratch (equal to torchao's ``to_nf4``), QLoRA layers;
- :mod:`~tutorlib.llm.rag`: chunking, MiniLM retrieval, recall@k, RAG prompts, unsupported answers, injection;
- :mod:`~tutorlib.llm.translate`: a small encoder–decoder vs decoder-only translation model;
- :mod:`~tutorlib.llm.metrics`: ROUGE-1/2/L, exact match, token F1;
- :mod:`~tutorlib.llm.tasks`: extractive QA and summarization with the model classes;
- :mod:`~tutorlib.llm.widgets`: the decoding explorer and the next-token/attention explorer.
The same SFT and DPO on your own files: ``tutorlib finetune --task causal-lm | preference``.

>>> from tutorlib.llm import greedy, beam_search, sample, top_p_filter, rouge_l, ChatSession
>>> from tutorlib.llm import Llama, LlamaConfig, KVCache, BPETokenizer, text_bits_per_byte
"""

from tutorlib.llm.bpe import SPLIT_PATTERN, BPETokenizer, merge_pair, pair_counts, train_bpe
from tutorlib.llm.decoding import (STRATEGIES, CachedLogits, apply_repetition_penalty, apply_temperature, as_logits_fn,
                                   beam_search, filtered_distribution, generate, greedy, next_token_logits,
                                   sample, top_k_filter, top_p_filter)
from tutorlib.llm.dialogue import (ChatSession, LongTermMemory, Memory, Turn, bag_of_words_embedder, chat_renderer,
                                   chat_responder, cosine_top_k, first_sentence_summary, gpt_responder, hf_responder,
                                   minilm_embedder, recall_correct, recall_dialogues, recall_prompts, token_counter,
                                   user_facts_summary)
from tutorlib.llm.evaluate import bits_per_byte, text_bits_per_byte, text_nll
from tutorlib.llm.hf import char_tokenizer, export_hf, to_gpt2
from tutorlib.llm.kv_cache import KVCache, kv_cache_bytes, time_forward_vs_cached
from tutorlib.llm.layers import (RMSNorm, SwiGLU, apply_rope, causal_attention, causal_mask, repeat_kv, rms_norm,
                                 rope_cos_sin, rotate_half)
from tutorlib.llm.llama import Llama, LlamaConfig, compare_hidden_states, generate_greedy, hf_to_ours
from tutorlib.llm.metrics import (corpus_scores, exact_match, lcs_length, normalize_answer, rouge_l, rouge_n,
                                  rouge_scores, rouge_tokens, token_f1)
from tutorlib.llm.pretrain import CharWindows, PretrainResult, encode_corpus, perplexity, pretrain_gpt
from tutorlib.llm.tools import (AgentResult, ToolCall, ToolCallError, ToolRegistry, calculator, function_schema,
                                generate_batch, parse_tool_calls, render_chat, run_agent, run_agents)
from tutorlib.llm.tasks import (QAExample, answer_question, build_qa_model, evaluate_qa, review_qa_examples,
                                review_summary_examples, summarize, summary_prompt, train_qa)

__all__ = [
    "STRATEGIES", "CachedLogits", "apply_repetition_penalty", "apply_temperature", "as_logits_fn", "beam_search", "filtered_distribution",
    "generate", "greedy", "next_token_logits", "sample", "top_k_filter", "top_p_filter", "ChatSession",
    "LongTermMemory", "Memory", "Turn", "bag_of_words_embedder", "cosine_top_k", "first_sentence_summary",
    "gpt_responder", "hf_responder", "minilm_embedder", "char_tokenizer", "export_hf", "to_gpt2", "corpus_scores",
    "exact_match", "lcs_length", "normalize_answer", "rouge_l", "rouge_n", "rouge_scores", "rouge_tokens", "token_f1",
    "CharWindows", "PretrainResult", "encode_corpus", "perplexity", "pretrain_gpt", "QAExample", "answer_question",
    "build_qa_model", "evaluate_qa", "review_qa_examples", "review_summary_examples", "summarize", "summary_prompt",
    "train_qa", "SPLIT_PATTERN", "BPETokenizer", "merge_pair", "pair_counts", "train_bpe", "bits_per_byte",
    "text_bits_per_byte", "text_nll", "KVCache", "kv_cache_bytes", "time_forward_vs_cached", "RMSNorm", "SwiGLU",
    "apply_rope", "causal_attention", "causal_mask", "repeat_kv", "rms_norm", "rope_cos_sin", "rotate_half", "Llama",
    "LlamaConfig", "compare_hidden_states", "generate_greedy", "hf_to_ours", "chat_renderer", "chat_responder",
    "recall_correct", "recall_dialogues", "recall_prompts", "token_counter", "user_facts_summary", "AgentResult",
    "ToolCall", "ToolCallError", "ToolRegistry", "calculator", "function_schema", "generate_batch", "parse_tool_calls",
    "render_chat", "run_agent", "run_agents",
]
