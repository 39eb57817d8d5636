"""Bridges between the course's TinyGPT and Hugging Face model classes.

:func:`to_gpt2` copies a :class:`~tutorlib.models.TinyGPT` into a ``GPT2LMHeadModel`` with the same
outputs (the two share the GPT-2 layout), :func:`char_tokenizer` is a Hugging Face tokenizer with
the same ids as :class:`~tutorlib.models.ByteTokenizer`, and :func:`export_hf` saves both as a model
folder that ``from_pretrained``, ``generate`` and ``tutorlib finetune --task causal-lm`` accept.

>>> import torch
>>> from tutorlib.models import TinyGPT, GPTConfig
>>> m = TinyGPT(GPTConfig(block_size=16, n_layer=1, n_head=2, d_model=16)).eval()
>>> hf = to_gpt2(m); ids = torch.tensor([[5, 6, 7]])
>>> torch.allclose(hf(ids).logits, m(ids), atol=1e-5)
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["to_gpt2", "char_tokenizer", "export_hf", "EOS", "PAD", "token_strings"]

#: ASCII "end of text" and NUL: the bytes (ids 3 and 0) that :func:`char_tokenizer` uses for end-of-sequence and padding.
EOS, PAD = "\x03", "\x00"


def to_gpt2(model: nn.Module) -> Any:
    """A ``transformers.GPT2LMHeadModel`` holding a copy of ``model``'s (a TinyGPT's) weights.

    >>> from tutorlib.models import TinyGPT, GPTConfig
    >>> to_gpt2(TinyGPT(GPTConfig(n_layer=1, d_model=16, n_head=2))).config.n_layer
    1
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(model, "blocks"):
        raise TypeError(f"to_gpt2 expects a tutorlib.models.TinyGPT, got {type(model).__name__}")
    hf_cfg = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.d_model, n_layer=cfg.n_layer,
                        n_head=cfg.n_head, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, layer_norm_epsilon=1e-5, tie_word_embeddings=True,
                        bos_token_id=ord(EOS), eos_token_id=ord(EOS), pad_token_id=ord(PAD))
    hf = GPT2LMHeadModel(hf_cfg)
    sd = model.state_dict()
    new = {"transformer.wte.weight": sd["tok_emb.weight"], "transformer.wpe.weight": sd["pos_emb.weight"],
           "transformer.ln_f.weight": sd["ln_f.weight"], "transformer.ln_f.bias": sd["ln_f.bias"]}
    # Hugging Face's GPT-2 uses Conv1D layers: weight (in, out), the transpose of nn.Linear's.
    pairs = {"ln_1": ("ln1", False), "ln_2": ("ln2", False), "attn.c_attn": ("attn", True),
             "attn.c_proj": ("proj", True), "mlp.c_fc": ("mlp.0", True), "mlp.c_proj": ("mlp.2", True)}
    for i in range(cfg.n_layer):
        for theirs, (ours, transpose) in pairs.items():
            w = sd[f"blocks.{i}.{ours}.weight"]
            new[f"transformer.h.{i}.{theirs}.weight"] = w.t().contiguous() if transpose else w
            new[f"transformer.h.{i}.{theirs}.bias"] = sd[f"blocks.{i}.{ours}.bias"]
    missing, unexpected = hf.load_state_dict(new, strict=False)
    missing = [k for k in missing if not k.endswith(("attn.bias", "attn.masked_bias", "lm_head.weight"))]
    if missing or unexpected:  # pragma: no cover - a transformers layout change
        raise RuntimeError(f"GPT-2 layout changed: missing {missing}, unexpected {unexpected}")
    hf.tie_weights()
    return hf.to(next(model.parameters()).device).eval()


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in character for each byte (what a byte-level ``tokenizers`` vocabulary stores)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def token_strings(tokenizer: Any, ids: Any) -> list[str]:
    r"""One display string per token of a byte-level ``transformers`` tokenizer (GPT-2, Llama 3, SmolLM2, ...).

    Each token is shown as the text of its bytes; bytes that are only part of a character (a Chinese
    character or an emoji split over several tokens) are shown as ``\xNN`` instead of the ``�`` that
    ``decode([id])`` gives. Special tokens are shown as they are.

    >>> tok = char_tokenizer()
    >>> token_strings(tok, tok("é!")["input_ids"])
    ['\\xc3', '\\xa9', '!']
    """
    inverse = {c: b for b, c in _bytes_to_unicode().items()}
    special = set(getattr(tokenizer, "all_special_tokens", []))
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    out = []
    for piece in tokenizer.convert_ids_to_tokens([int(i) for i in ids]):
        if piece in special or any(ch not in inverse for ch in piece):
            out.append(piece)
        else:
            out.append(bytes(inverse[ch] for ch in piece).decode("utf-8", errors="backslashreplace"))
    return out


def char_tokenizer() -> Any:
    """A ``PreTrainedTokenizerFast`` with one token per UTF-8 byte, ids equal to ``ByteTokenizer``'s for any text.

    Byte 3 (``\\x03``, end of text) is the EOS and BOS token and byte 0 the padding token; the tokenizer shows
    them by their byte-level stand-in characters (``tok.eos_token``), their ids are 3 and 0.

    >>> tok = char_tokenizer(); tok("def f")["input_ids"]
    [100, 101, 102, 32, 102]
    >>> tok.decode(tok("x = 1 # é\\n")["input_ids"]), tok.eos_token_id
    ('x = 1 # é\\n', 3)
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = _bytes_to_unicode()
    core = Tokenizer(models.BPE(vocab={chars[b]: b for b in range(256)}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    eos, pad = chars[ord(EOS)], chars[ord(PAD)]
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=eos, pad_token=pad, bos_token=eos,
                                   clean_up_tokenization_spaces=False, model_max_length=1_000_000)


def export_hf(model: nn.Module, folder: str | Path) -> Path:
    """Save ``model`` (a TinyGPT) as a GPT-2 model folder with :func:`char_tokenizer`; returns the folder.

    >>> import tempfile
    >>> from tutorlib.models import TinyGPT, GPTConfig
    >>> from transformers import AutoModelForCausalLM
    >>> d = export_hf(TinyGPT(GPTConfig(n_layer=1, d_model=16, n_head=2)), tempfile.mkdtemp())
    >>> type(AutoModelForCausalLM.from_pretrained(d)).__name__
    'GPT2LMHeadModel'
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    to_gpt2(model).save_pretrained(folder)
    char_tokenizer().save_pretrained(folder)
    return folder
