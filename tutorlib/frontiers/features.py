"""Frozen MiniLM sentence embeddings of the review texts (the features the adversarial and fairness sections train heads on).

>>> X = embed_texts(["great", "awful"]); tuple(X.shape)
(2, 384)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["embed_texts"]

_CACHE: dict = {}


@torch.no_grad()
def embed_texts(texts: Sequence[str], batch_size: int = 64, max_length: int = 64, model: str | None = None,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Mean-pooled, L2-normalised MiniLM embeddings ``(N, 384)`` of ``texts`` (the bundled encoder by default).

    The encoder and tokenizer are loaded once per process and kept.

    >>> embed_texts(["one sentence"]).norm(dim=1).round(decimals=4).tolist()
    [1.0]
    """
    from tutorlib.models import load_encoder, load_tokenizer, mean_pool
    from tutorlib.runtime import get_device

    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a list of strings (wrap a single text in a list)")
    if len(texts) == 0:
        raise ValueError("texts is empty")
    dev = get_device(device)
    key = (model, str(dev))
    if key not in _CACHE:
        enc = load_encoder(model).to(dev).eval()
        _CACHE[key] = (enc, load_tokenizer(model))
    enc, tok = _CACHE[key]
    out = []
    for i in range(0, len(texts), batch_size):
        b = tok(list(texts[i:i + batch_size]), padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(dev)
        h = enc(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
        out.append(torch.nn.functional.normalize(mean_pool(h, b["attention_mask"]), dim=1).cpu())
    return torch.cat(out)
