"""Lesson 10: generation and LLM applications.

- :mod:`~tutorlib.generation.pretrain`: pretrain the TinyGPT on the code corpus, tracking perplexity and samples;
- :mod:`~tutorlib.generation.decoding`: greedy, beam search, temperature, top-k, top-p, repetition
  penalty from scratch (checked against ``transformers``' ``generate``);
- :mod:`~tutorlib.generation.hf`: the TinyGPT as a Hugging Face ``GPT2LMHeadModel`` + tokenizer;
- :mod:`~tutorlib.generation.dialogue`: a chat loop within a token budget, long-term memory in SQLite;
- :mod:`~tutorlib.generation.metrics`: ROUGE-1/2/L, exact match, token F1;
- :mod:`~tutorlib.generation.tasks`: extractive QA and summarization with the model classes;
- :mod:`~tutorlib.generation.widgets`: the decoding explorer.
LoRA SFT of a causal LM is ``tutorlib finetune --task causal-lm`` (:mod:`tutorlib.finetune.causal_lm`).

>>> from tutorlib.generation import greedy, beam_search, sample, top_p_filter, rouge_l, ChatSession
"""

from tutorlib.generation.decoding import (STRATEGIES, apply_repetition_penalty, apply_temperature, as_logits_fn,
                                          beam_search, filtered_distribution, generate, greedy, next_token_logits,
                                          sample, top_k_filter, top_p_filter)
from tutorlib.generation.dialogue import (ChatSession, LongTermMemory, Memory, Turn, bag_of_words_embedder,
                                          cosine_top_k, first_sentence_summary, gpt_responder, hf_responder,
                                          minilm_embedder)
from tutorlib.generation.hf import char_tokenizer, export_hf, to_gpt2
from tutorlib.generation.metrics import (corpus_scores, exact_match, lcs_length, normalize_answer, rouge_l, rouge_n,
                                         rouge_scores, rouge_tokens, token_f1)
from tutorlib.generation.pretrain import CharWindows, PretrainResult, encode_corpus, perplexity, pretrain_gpt
from tutorlib.generation.tasks import (QAExample, answer_question, build_qa_model, evaluate_qa, review_qa_examples,
                                       review_summary_examples, summarize, summary_prompt, train_qa)

__all__ = [
    "STRATEGIES", "apply_repetition_penalty", "apply_temperature", "as_logits_fn", "beam_search", "filtered_distribution",
    "generate", "greedy", "next_token_logits", "sample", "top_k_filter", "top_p_filter", "ChatSession",
    "LongTermMemory", "Memory", "Turn", "bag_of_words_embedder", "cosine_top_k", "first_sentence_summary",
    "gpt_responder", "hf_responder", "minilm_embedder", "char_tokenizer", "export_hf", "to_gpt2", "corpus_scores",
    "exact_match", "lcs_length", "normalize_answer", "rouge_l", "rouge_n", "rouge_scores", "rouge_tokens", "token_f1",
    "CharWindows", "PretrainResult", "encode_corpus", "perplexity", "pretrain_gpt", "QAExample", "answer_question",
    "build_qa_model", "evaluate_qa", "review_qa_examples", "review_summary_examples", "summarize", "summary_prompt",
    "train_qa",
]
