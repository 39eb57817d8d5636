"""The key/value cache of a decoder, from scratch, and what it costs and saves.

Generating token ``n+1`` needs the keys and values of all ``n`` previous tokens in every layer. Without a
cache the model recomputes them at every step (a forward over the whole prefix); with one it computes the
new token's keys/values only and appends them: one step costs O(1) layer work instead of O(n).
The price is memory: ``2 · layers · kv_heads · head_dim · length · batch`` numbers (:func:`kv_cache_bytes`).

>>> import torch
>>> cache = KVCache()
>>> k_all, v_all = cache.update(0, torch.zeros(1, 2, 5, 4), torch.zeros(1, 2, 5, 4))
>>> k_all, v_all = cache.update(0, torch.ones(1, 2, 1, 4), torch.ones(1, 2, 1, 4))
>>> k_all.shape, cache.length, cache.nbytes()
(torch.Size([1, 2, 6, 4]), 6, 384)
"""

from __future__ import annotations

import time
from typing import Any

import torch

__all__ = ["KVCache", "kv_cache_bytes", "time_forward_vs_cached"]


class KVCache:
    """Per-layer keys and values of the tokens seen so far, each (B, H_kv, T, D).

    ``update(layer, k, v)`` appends the new tokens' keys/values of one layer and returns all of them.
    ``mode="preallocate"`` (default) writes into buffers of ``max_len`` positions (doubling when full, so an
    append never copies the whole cache); ``mode="cat"`` concatenates, the simplest version (one copy of
    the whole cache per step). ``length`` is the number of cached positions, ``nbytes()`` their memory,
    ``crop(n)`` forgets all but the first ``n`` positions and ``reset()`` empties the cache.

    >>> c = KVCache(mode="cat"); _ = c.update(0, torch.zeros(1, 1, 3, 2), torch.zeros(1, 1, 3, 2)); c.length
    3
    >>> c.crop(1); c.length
    1
    """

    def __init__(self, max_len: int = 256, mode: str = "preallocate") -> None:
        if mode not in ("preallocate", "cat"):
            raise ValueError(f"mode must be 'preallocate' or 'cat', got {mode!r}")
        if max_len < 1:
            raise ValueError(f"max_len must be positive, got {max_len}")
        self.max_len, self.mode = max_len, mode
        self.keys: list[torch.Tensor] = []       # per layer: a buffer (preallocate) or the tensor itself (cat)
        self.values: list[torch.Tensor] = []
        self.lengths: list[int] = []

    @property
    def length(self) -> int:
        """Number of cached positions (of layer 0; all layers agree after a full forward)."""
        return self.lengths[0] if self.lengths else 0

    def __len__(self) -> int:
        return self.length

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``k``, ``v`` (B, H_kv, T_new, D) to ``layer``'s cache; return all keys and values (B, H_kv, T, D)."""
        if k.dim() != 4 or k.shape != v.shape:
            raise ValueError(f"expected k and v of the same shape (B, H_kv, T, D), got {tuple(k.shape)} and "
                             f"{tuple(v.shape)}")
        if layer > len(self.keys):
            raise ValueError(f"update layer {len(self.keys)} before layer {layer}: layers are filled in order")
        if layer == len(self.keys):                          # first tokens of this layer
            if self.mode == "cat":
                self.keys.append(k)
                self.values.append(v)
            else:
                cap = max(self.max_len, k.shape[2])
                kb = k.new_empty(*k.shape[:2], cap, k.shape[3])
                vb = v.new_empty(*v.shape[:2], cap, v.shape[3])
                kb[:, :, :k.shape[2]] = k
                vb[:, :, :v.shape[2]] = v
                self.keys.append(kb)
                self.values.append(vb)
            self.lengths.append(k.shape[2])
            return self._get(layer)
        old, new = self.lengths[layer], self.lengths[layer] + k.shape[2]
        K, V = self.keys[layer], self.values[layer]
        if K.shape[0] != k.shape[0] or K.shape[1] != k.shape[1] or K.shape[3] != k.shape[3]:
            raise ValueError(f"layer {layer} caches (B, H_kv, ·, D) = {tuple(K.shape[:2])}, {K.shape[3]}; got "
                             f"{tuple(k.shape)}: call reset() before a new batch")
        if self.mode == "cat":
            self.keys[layer] = torch.cat([K[:, :, :old], k], dim=2)
            self.values[layer] = torch.cat([V[:, :, :old], v], dim=2)
        else:
            if new > K.shape[2]:                              # full: double the buffer (rare, amortised)
                cap = max(2 * K.shape[2], new)
                K2, V2 = K.new_empty(*K.shape[:2], cap, K.shape[3]), V.new_empty(*V.shape[:2], cap, V.shape[3])
                K2[:, :, :old], V2[:, :, :old] = K[:, :, :old], V[:, :, :old]
                self.keys[layer], self.values[layer] = K, V = K2, V2
            K[:, :, old:new] = k
            V[:, :, old:new] = v
        self.lengths[layer] = new
        return self._get(layer)

    def _get(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.lengths[layer]
        return self.keys[layer][:, :, :n], self.values[layer][:, :, :n]

    def get(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The cached keys and values of ``layer``, each (B, H_kv, length, D)."""
        if layer >= len(self.keys):
            raise IndexError(f"layer {layer} has nothing cached yet ({len(self.keys)} layers cached)")
        return self._get(layer)

    def nbytes(self) -> int:
        """Memory of the cached positions' keys and values (not counting unused preallocated room)."""
        return sum(2 * n * k.shape[0] * k.shape[1] * k.shape[3] * k.element_size()
                   for k, n in zip(self.keys, self.lengths))

    def allocated_bytes(self) -> int:
        """Memory actually held, including the preallocated room not yet used."""
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in zip(self.keys, self.values))

    def crop(self, length: int) -> None:
        """Keep only the first ``length`` positions of every layer (e.g. to re-time the same step)."""
        if length < 0 or length > self.length:
            raise ValueError(f"cannot crop a cache of length {self.length} to {length}")
        for i in range(len(self.lengths)):
            self.lengths[i] = min(self.lengths[i], length)
            if self.mode == "cat":
                self.keys[i], self.values[i] = self.keys[i][:, :, :length], self.values[i][:, :, :length]

    def reset(self) -> None:
        """Empty the cache (before a new prompt or batch)."""
        self.keys, self.values, self.lengths = [], [], []

    def __repr__(self) -> str:
        return f"KVCache(layers={len(self.keys)}, length={self.length}, nbytes={self.nbytes():,}, mode={self.mode!r})"


def _sizes(config: Any) -> tuple[int, int, int]:
    """(layers, kv heads, head dim) from a :class:`~tutorlib.llm.llama.LlamaConfig` or a ``transformers`` config."""
    if hasattr(config, "n_kv_head"):
        return config.n_layer, config.n_kv_head, config.head_dim
    n_head = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    return config.num_hidden_layers, getattr(config, "num_key_value_heads", None) or n_head, head_dim


def kv_cache_bytes(config: Any, seq_len: int, batch: int = 1, dtype: torch.dtype = torch.float32) -> int:
    """Bytes of a full KV cache: ``2 (k and v) × layers × kv_heads × head_dim × seq_len × batch × element size``.

    ``config``: a :class:`~tutorlib.llm.llama.LlamaConfig` or a ``transformers`` ``LlamaConfig``.

    >>> from types import SimpleNamespace
    >>> kv_cache_bytes(SimpleNamespace(n_layer=30, n_kv_head=3, head_dim=64), seq_len=1024)   # SmolLM2-135M
    47185920
    """
    if seq_len < 0 or batch < 1:
        raise ValueError(f"seq_len must be >= 0 and batch >= 1, got {seq_len}, {batch}")
    layers, kv_heads, head_dim = _sizes(config)
    return 2 * layers * kv_heads * head_dim * seq_len * batch * torch.empty((), dtype=dtype).element_size()


def time_forward_vs_cached(model: torch.nn.Module, prefix_lengths: list[int], *, repeats: int = 3,
                           seed: int = 0) -> list[dict[str, float]]:
    """Time one generation step at each prefix length ``n``, without and with the KV cache.

    Uncached: one forward over the ``n + 1`` tokens (what generation without a cache does at every step).
    Cached: one forward of the single new token against a cache holding the ``n`` previous ones.
    ``model`` is a :class:`~tutorlib.llm.llama.Llama`; ids are random (timing does not depend on them).
    Best of ``repeats`` (the two alternate). Returns one dict per length: ``length``, ``uncached_s``, ``cached_s``, ``speedup``.

    >>> from tutorlib.llm.llama import Llama, LlamaConfig
    >>> m = Llama(LlamaConfig(vocab_size=50, d_model=16, n_layer=1, n_head=2, n_kv_head=1, d_ff=32))
    >>> [r["length"] for r in time_forward_vs_cached(m, [4, 8], repeats=1)]
    [4, 8]
    """
    g = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    rows = []
    with torch.inference_mode():
        for n in prefix_lengths:
            if n < 1:
                raise ValueError(f"prefix lengths must be positive, got {n}")
            ids = torch.randint(0, model.config.vocab_size, (1, n + 1), generator=g).to(device)
            cache = KVCache(max_len=n + 1)
            model(ids[:, :n], cache=cache)                       # fill the cache (and warm up)
            uncached = cached = float("inf")
            for _ in range(repeats):                             # interleaved, so other load hits both alike
                t = time.perf_counter()
                model(ids)
                uncached = min(uncached, time.perf_counter() - t)
                cache.crop(n)
                t = time.perf_counter()
                model(ids[:, n:], cache=cache)
                cached = min(cached, time.perf_counter() - t)
            rows.append({"length": n, "uncached_s": uncached, "cached_s": cached, "speedup": uncached / cached})
    return rows
