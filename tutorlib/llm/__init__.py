"""Lesson 10: generation and LLM applications.

- :mod:`~tutorlib.llm.pretrain`: pretrain the TinyGPT on the code corpus, tracking perplexity and samples;
- :mod:`~tutorlib.llm.decoding`: greedy, beam search, temperature, top-k, top-p, repetition
  penalty from scratch (checked against ``transformers``' ``generate``);
- :mod:`~tutorlib.llm.hf`: the TinyGPT as a Hugging Face ``GPT2LMHeadModel`` + tokenizer;
- :mod:`~tutorlib.llm.dialogue`: a chat loop within a token budget, long-term memory in SQLite;
- :mod:`~tutorlib.llm.metrics`: ROUGE-1/2/L, exact match, token F1;
- :mod:`~tutorlib.llm.tasks`: extractive QA and summarization with the model classes;
- :mod:`~tutorlib.llm.widgets`: the decoding explorer.
LoRA SFT of a causal LM is ``tutorlib finetune --task causal-lm`` (:mod:`tutorlib.finetune.causal_lm`).

>>> from tutorlib.llm import greedy, beam_search, sample, top_p_filter, rouge_l, ChatSession
"""

from tutorlib.llm.decoding import (STRATEGIES, apply_repetition_penalty, apply_temperature, as_logits_fn,
                                   beam_search, filtered_distribution, generate, greedy, next_token_logits,
                                   sample, top_k_filter, top_p_filter)
from tutorlib.llm.dialogue import (ChatSession, LongTermMemory, Memory, Turn, bag_of_words_embedder,
                                   cosine_top_k, first_sentence_summary, gpt_responder, hf_responder,
                                   minilm_embedder)
from tutorlib.llm.hf import char_tokenizer, export_hf, to_gpt2
from tutorlib.llm.metrics import (corpus_scores, exact_match, lcs_length, normalize_answer, rouge_l, rouge_n,
                                  rouge_scores, rouge_tokens, token_f1)
from tutorlib.llm.pretrain import CharWindows, PretrainResult, encode_corpus, perplexity, pretrain_gpt
from tutorlib.llm.tasks import (QAExample, answer_question, build_qa_model, evaluate_qa, review_qa_examples,
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
