"""Bits per byte: a language-model score that does not depend on the tokenizer.

Perplexity is per *token*, so a model with a byte tokenizer and one with a 49k-token BPE cannot be compared
by it (their tokens are different units). Dividing the total negative log-likelihood of a text by its number of
UTF-8 bytes (and by ln 2 to get bits) gives a score both models share: how many bits each byte of the text
costs under the model. Lower is better; 8 bits per byte is a model that knows nothing about the bytes.

>>> round(bits_per_byte(math.log(2) * 100, 50), 3)          # 100 bits over 50 bytes
2.0
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch.nn import functional as F

__all__ = ["bits_per_byte", "text_nll", "text_bits_per_byte"]


def bits_per_byte(nll_nats_total: float, n_bytes: int) -> float:
    """Total negative log-likelihood in nats -> bits per byte: ``nll / ln 2 / n_bytes``.

    >>> bits_per_byte(0.0, 10)
    0.0
    """
    if n_bytes <= 0:
        raise ValueError(f"n_bytes must be positive, got {n_bytes}")
    return float(nll_nats_total) / math.log(2) / n_bytes


def _logits(model_fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> torch.Tensor:
    out = model_fn(x)
    if hasattr(out, "logits"):                  # a transformers model output
        out = out.logits
    elif isinstance(out, (tuple, list)):
        out = out[0]
    return out


def _encode(tokenizer: Any, text: str) -> list[int]:
    try:
        ids = tokenizer.encode(text, add_special_tokens=False)      # transformers: no BOS/EOS added
    except TypeError:
        ids = tokenizer.encode(text)
    return list(ids)


@torch.inference_mode()
def text_nll(model_fn: Callable[[torch.Tensor], Any], ids: list[int] | torch.Tensor, context: int,
             stride: int | None = None, device: torch.device | str | None = None) -> tuple[float, int]:
    """Sum of next-token negative log-likelihoods (nats) of ``ids[1:]`` and how many tokens that is.

    Texts longer than ``context`` are scored with a sliding window: windows of ``context`` tokens start every
    ``stride`` tokens (default ``context // 2``) and each token is scored once, in the first window that
    reaches it, so most tokens see at least ``context - stride`` tokens of history.
    ``model_fn(ids (1, T))`` returns logits (1, T, V) (a model output with ``.logits`` or a tuple also works).

    >>> uniform = lambda x: torch.zeros(*x.shape, 4)              # knows nothing: log 4 nats per token
    >>> nll, n = text_nll(uniform, [0, 1, 2, 3, 0, 1], context=4)
    >>> n, round(nll / n, 4) == round(math.log(4), 4)
    (5, True)
    """
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    n = ids.numel()
    if n < 2:
        raise ValueError("need at least 2 tokens to score a next-token prediction")
    if context < 2:
        raise ValueError(f"context must be at least 2, got {context}")
    stride = stride or max(1, context // 2)
    if not 1 <= stride <= context - 1:
        raise ValueError(f"stride must be in [1, context - 1] = [1, {context - 1}], got {stride}")
    if device is None and isinstance(model_fn, torch.nn.Module):
        device = next(model_fn.parameters()).device
    total, scored, begin, done = 0.0, 0, 0, 1     # done: first position not yet scored
    while True:
        end = min(begin + context, n)
        window = ids[begin:end].to(device)
        logp = F.log_softmax(_logits(model_fn, window[None])[0, :-1].float(), dim=-1)   # predicts window[1:]
        first = max(done, begin + 1)
        targets = window[first - begin:]
        total -= logp[first - begin - 1:].gather(-1, targets[:, None]).sum().item()
        scored += targets.numel()
        done = end
        if end == n:
            return total, scored
        begin += stride


def text_bits_per_byte(model_fn: Callable[[torch.Tensor], Any], tokenizer: Any, text: str, context: int = 1024,
                       stride: int | None = None, device: torch.device | str | None = None) -> float:
    """Bits per byte of ``text`` under a causal LM: NLL of every token but the first / ln 2 / their UTF-8 bytes.

    ``tokenizer.encode(text)`` gives the ids (a ``transformers`` tokenizer is called without special tokens);
    the first token has no history, so it and its bytes are left out. ``context``: the model's window
    (e.g. ``block_size`` of the TinyGPT); see :func:`text_nll` for the sliding window.

    >>> from tutorlib.models import ByteTokenizer
    >>> uniform = lambda x: torch.zeros(*x.shape, 256)           # every byte equally likely: 8 bits per byte
    >>> round(text_bits_per_byte(uniform, ByteTokenizer(), "def f(): pass", context=8), 6)
    8.0
    """
    if not isinstance(text, str) or not text:
        raise ValueError("text must be a non-empty string")
    ids = _encode(tokenizer, text)
    nll, _ = text_nll(model_fn, ids, context, stride, device)
    first_bytes = len(tokenizer.decode([ids[0]]).encode("utf-8"))
    n_bytes = len(text.encode("utf-8")) - first_bytes
    return bits_per_byte(nll, n_bytes)
