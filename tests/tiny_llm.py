"""Tiny stand-ins for the bundled LLM, for fast tests: a GGUF file that ``transformers`` loads, and a saved folder.

The GGUF holds a random 2-layer Llama (hidden 32, grouped-query attention) and a byte-level BPE tokenizer
(259 byte/special tokens + 5 merges) with a ChatML chat template, in the same layout as the bundled
SmolLM2 file: ids 0/1/2 are <|endoftext|>, <|im_start|>, <|im_end|> (EOS).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HIDDEN, LAYERS, HEADS, KV_HEADS, FFN = 32, 2, 4, 2, 64
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
EOS_ID = 2
CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                 "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_tiny_gguf(path: str | Path, seed: int = 0) -> Path:
    """Write a tiny random Llama + BPE tokenizer as a float32 GGUF file at ``path``."""
    from gguf import GGUFWriter

    b2u = _bytes_to_unicode()
    tokens = SPECIALS + [b2u[b] for b in range(256)]
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("a", "t")]
    tokens += [a + b for a, b in merges]
    vocab = len(tokens)
    path = Path(path)
    w = GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_block_count(LAYERS)
    w.add_context_length(256)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_rope_dimension_count(HIDDEN // HEADS)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3] * len(SPECIALS) + [1] * (vocab - len(SPECIALS)))
    w.add_token_merges([f"{a} {b}" for a, b in merges])
    w.add_bos_token_id(1)
    w.add_eos_token_id(EOS_ID)
    w.add_unk_token_id(0)
    w.add_pad_token_id(EOS_ID)
    w.add_add_bos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)
    rng = np.random.default_rng(seed)

    def rand(name: str, *shape: int) -> None:
        w.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    kv = HIDDEN // HEADS * KV_HEADS
    rand("token_embd.weight", vocab, HIDDEN)
    for i in range(LAYERS):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(HIDDEN, np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(HIDDEN, np.float32))
        rand(f"blk.{i}.attn_q.weight", HIDDEN, HIDDEN)
        rand(f"blk.{i}.attn_k.weight", kv, HIDDEN)
        rand(f"blk.{i}.attn_v.weight", kv, HIDDEN)
        rand(f"blk.{i}.attn_output.weight", HIDDEN, HIDDEN)
        rand(f"blk.{i}.ffn_gate.weight", FFN, HIDDEN)
        rand(f"blk.{i}.ffn_up.weight", FFN, HIDDEN)
        rand(f"blk.{i}.ffn_down.weight", HIDDEN, FFN)
    w.add_tensor("output_norm.weight", np.ones(HIDDEN, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def tiny_tokenizer(workdir: str | Path):
    """The tiny GGUF's tokenizer (with its chat template), loaded by ``transformers``."""
    from transformers import AutoTokenizer

    gguf = write_tiny_gguf(Path(workdir) / "tok.gguf")
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def tiny_llm_folder(folder: str | Path, favourite: int | None = None, seed: int = 0) -> Path:
    """Save a tiny random ``LlamaForCausalLM`` + the tiny tokenizer to ``folder`` (``save_pretrained``).

    ``favourite``: rig the weights so that greedy decoding always picks that token id (e.g. ``EOS_ID`` for a
    model that stops at once, or a letter for one that never stops).
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = tiny_tokenizer(folder)
    (folder / "tok.gguf").unlink()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
                         num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=256,
                         tie_word_embeddings=False, bos_token_id=1, eos_token_id=EOS_ID, pad_token_id=EOS_ID)
    model = LlamaForCausalLM(config)
    if favourite is not None:
        with torch.no_grad():  # blocks add nothing; every token's state points along dimension 0
            for layer in model.model.layers:
                layer.self_attn.o_proj.weight.zero_()
                layer.mlp.down_proj.weight.zero_()
            model.model.embed_tokens.weight[:, 0] = 10.0
            model.lm_head.weight.zero_()
            model.lm_head.weight[favourite, 0] = 5.0
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder
