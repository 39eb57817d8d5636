"""Decoding from scratch: greedy, beam search, temperature, top-k, top-p and repetition penalty.

Every function takes a *model* that maps token ids ``(B, T)`` to logits ``(B, T, V)``: a
:class:`tutorlib.models.TinyGPT`, a Hugging Face causal LM (``model(input_ids).logits`` is used) or
any callable. The filters follow the Hugging Face logits processors exactly (same order, same
tie rules), and the unit tests compare token ids with ``transformers``' ``generate``.

>>> import torch
>>> from tutorlib.models import TinyGPT, GPTConfig
>>> torch.manual_seed(0); m = TinyGPT(GPTConfig(block_size=16, n_layer=1, n_head=2, d_model=16)).eval()  # doctest: +ELLIPSIS
<...>
>>> prompt = torch.tensor([[1, 2, 3]])
>>> greedy(m, prompt, 4).shape
torch.Size([1, 7])
>>> torch.equal(beam_search(m, prompt, 4, num_beams=1), greedy(m, prompt, 4))
True
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.nn import functional as F

__all__ = ["as_logits_fn", "CachedLogits", "next_token_logits", "apply_temperature", "top_k_filter", "top_p_filter",
           "apply_repetition_penalty", "filtered_distribution", "greedy", "sample", "beam_search", "generate",
           "STRATEGIES"]

LogitsFn = Callable[[torch.Tensor], torch.Tensor]
STRATEGIES = ("greedy", "sample", "beam")


def as_logits_fn(model: Any) -> LogitsFn:
    """A function ``ids (B, T) -> logits (B, T, V)`` for a TinyGPT, a Hugging Face causal LM or a callable.

    TinyGPT inputs longer than its ``block_size`` are cropped to the last ``block_size`` tokens.

    >>> fn = as_logits_fn(lambda ids: torch.zeros(*ids.shape, 5)); fn(torch.zeros(1, 3, dtype=torch.long)).shape
    torch.Size([1, 3, 5])
    """
    if getattr(model, "_is_logits_fn", False):
        return model
    cfg = getattr(model, "cfg", None)
    if cfg is not None and hasattr(cfg, "block_size"):
        block = int(cfg.block_size)

        def fn(ids: torch.Tensor) -> torch.Tensor:
            return model(ids[:, -block:])
    elif hasattr(model, "generate") and hasattr(getattr(model, "config", None), "model_type"):   # transformers
        def fn(ids: torch.Tensor) -> torch.Tensor:
            return model(input_ids=ids).logits
    elif callable(model):
        def fn(ids: torch.Tensor) -> torch.Tensor:
            out = model(ids)
            return getattr(out, "logits", out)
    else:
        raise TypeError(f"model must be a TinyGPT, a Hugging Face causal LM or a callable, got {type(model).__name__}")
    fn._is_logits_fn = True  # type: ignore[attr-defined]
    return fn


class CachedLogits:
    """A :class:`tutorlib.llm.Llama` as a logits function that keeps a KV cache between decoding steps.

    The decoding loops here call the model on the whole sequence at every step. Wrapped in this class, a
    call whose rows each extend a row of the previous call by one token runs only that token against the
    cached keys/values (rows are matched, so the beams of :func:`beam_search` may be reordered or
    duplicated); any other call starts a fresh cache. It returns the last position's logits (B, V): the
    same tokens as the uncached model, each step costing one token instead of the whole prefix.

    >>> from tutorlib.llm.llama import Llama, LlamaConfig
    >>> m = Llama(LlamaConfig(vocab_size=11, d_model=8, n_layer=1, n_head=2, n_kv_head=1, d_ff=16)).eval()
    >>> p = torch.tensor([[1, 2]])
    >>> torch.equal(beam_search(CachedLogits(m), p, 5, num_beams=3), beam_search(m, p, 5, num_beams=3))
    True
    """

    _is_logits_fn = True

    def __init__(self, model: Any) -> None:
        if not hasattr(model, "features") or not hasattr(model, "lm_head"):
            raise TypeError(f"CachedLogits wraps a tutorlib.llm.Llama, got {type(model).__name__}: other models can "
                            "be passed to the decoding functions directly (uncached)")
        self.model = model
        self.reset()

    def reset(self) -> None:
        """Forget the cache (the next call runs its whole input)."""
        self.cache: Any = None
        self.prev: torch.Tensor | None = None
        self.cached_calls = 0

    @torch.no_grad()
    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        from tutorlib.llm.kv_cache import KVCache

        prev = self.prev
        if prev is not None and ids.shape[1] == prev.shape[1] + 1:
            same = (ids[:, None, :-1] == prev[None]).all(-1)             # (B new, B previous)
            if bool(same.any(1).all()):
                rows = same.float().argmax(1)
                if ids.shape[0] != prev.shape[0] or not torch.equal(rows, torch.arange(len(rows), device=rows.device)):
                    for store in (self.cache.keys, self.cache.values):
                        for i, t in enumerate(store):
                            store[i] = t.index_select(0, rows)
                h, _, _ = self.model.features(ids[:, -1:], self.cache)
                self.prev, self.cached_calls = ids, self.cached_calls + 1
                return self.model.lm_head(h[:, -1])
        self.cache = KVCache(max_len=ids.shape[1] + 64)
        h, _, _ = self.model.features(ids, self.cache)
        self.prev = ids
        return self.model.lm_head(h[:, -1])


def _check_ids(ids: Any) -> torch.Tensor:
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype not in (torch.long, torch.int32):
        got = f"{type(ids).__name__} {tuple(ids.shape)} {ids.dtype}" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"expected token ids as an int64 tensor of shape (B, T), got {got}: "
                         "wrap one prompt as torch.tensor([ids])")
    if ids.shape[1] == 0:
        raise ValueError("the prompt is empty: give at least one token")
    return ids.long()


@torch.no_grad()
def next_token_logits(model: Any, ids: torch.Tensor) -> torch.Tensor:
    """Logits (B, V) of the token after ``ids`` (B, T), in float32.

    >>> next_token_logits(lambda i: torch.ones(*i.shape, 4), torch.zeros(2, 3, dtype=torch.long)).shape
    torch.Size([2, 4])
    """
    out = as_logits_fn(model)(ids)
    if out.dim() == 3:
        out = out[:, -1, :]
    return out.float()


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide logits by ``temperature`` (> 0): below 1 sharpens the distribution, above 1 flattens it.

    >>> apply_temperature(torch.tensor([[2.0, 4.0]]), 2.0)
    tensor([[1., 2.]])
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (use greedy decoding for temperature 0), got {temperature}")
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row (ties with the k-th kept too); the rest become -inf.

    >>> top_k_filter(torch.tensor([[1.0, 3.0, 2.0]]), 2)
    tensor([[-inf, 3., 2.]])
    """
    if int(k) < 1:
        raise ValueError(f"top_k must be at least 1, got {k}")
    k = min(int(k), logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probabilities sum to at least ``p``.

    A token is kept when the probability of all more likely tokens is still below ``p``.

    >>> top_p_filter(torch.log(torch.tensor([[0.5, 0.3, 0.2]])), 0.7).isinf().tolist()
    [[False, False, True]]
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    probs = sorted_logits.softmax(dim=-1)
    before = probs.cumsum(dim=-1) - probs           # probability of the strictly more likely tokens
    remove = before >= p
    remove[..., :min_tokens_to_keep] = False
    mask = torch.zeros_like(remove).scatter(-1, order, remove)
    return logits.masked_fill(mask, float("-inf"))


def apply_repetition_penalty(logits: torch.Tensor, ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """Make every token already in ``ids`` less likely: positive logits ÷ penalty, negative × penalty (CTRL).

    >>> apply_repetition_penalty(torch.tensor([[2.0, -2.0, 2.0]]), torch.tensor([[0, 1]]), 2.0)
    tensor([[ 1., -4.,  2.]])
    """
    if not penalty > 0:
        raise ValueError(f"repetition_penalty must be > 0 (1 = off), got {penalty}")
    if penalty == 1.0:
        return logits
    seen = torch.gather(logits, 1, ids)
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(1, ids, seen)


def filtered_distribution(logits: torch.Tensor, ids: torch.Tensor | None = None, temperature: float = 1.0,
                          top_k: int | None = None, top_p: float | None = None,
                          repetition_penalty: float = 1.0) -> torch.Tensor:
    """Next-token probabilities after, in this order, repetition penalty, temperature, top-k and top-p.

    (The same order as ``transformers``' ``generate``.)

    >>> probs = filtered_distribution(torch.tensor([[1.0, 2.0, 3.0]]), top_k=1); probs
    tensor([[0., 0., 1.]])
    """
    if repetition_penalty != 1.0:
        if ids is None:
            raise ValueError("repetition_penalty needs the ids generated so far (ids=...)")
        logits = apply_repetition_penalty(logits, ids, repetition_penalty)
    logits = apply_temperature(logits, temperature)
    if top_k is not None and top_k > 0:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    return logits.softmax(dim=-1)


def _check_new(max_new_tokens: int) -> None:
    if int(max_new_tokens) < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")


def _decode(ids: torch.Tensor, max_new_tokens: int, eos_id: int | None,
            pick: Any) -> torch.Tensor:
    """The token-by-token loop shared by :func:`greedy` and :func:`sample`: ``pick(ids)`` gives the next ids.

    A row that has produced ``eos_id`` keeps emitting it; the loop stops once every row has.
    """
    _check_new(max_new_tokens)
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    for _ in range(int(max_new_tokens)):
        nxt = pick(ids)
        if eos_id is not None:
            nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
            done |= nxt == eos_id
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        if eos_id is not None and bool(done.all()):
            break
    return ids


@torch.no_grad()
def greedy(model: Any, ids: torch.Tensor, max_new_tokens: int, repetition_penalty: float = 1.0,
           eos_id: int | None = None) -> torch.Tensor:
    """Append the most likely token ``max_new_tokens`` times (stop early once every row produced ``eos_id``).

    >>> greedy(lambda i: F.one_hot((i + 1) % 5, 5).float(), torch.tensor([[0]]), 3)
    tensor([[0, 1, 2, 3]])
    """
    ids, fn = _check_ids(ids), as_logits_fn(model)
    return _decode(ids, max_new_tokens, eos_id,
                   lambda ids: apply_repetition_penalty(next_token_logits(fn, ids), ids, repetition_penalty).argmax(dim=-1))


@torch.no_grad()
def sample(model: Any, ids: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
           top_p: float | None = None, repetition_penalty: float = 1.0, eos_id: int | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample each next token from :func:`filtered_distribution` (``torch.multinomial``).

    With ``generator=None`` the global torch RNG is used, so ``torch.manual_seed(s)`` before this and
    before ``transformers``' ``generate(do_sample=True)`` gives the same tokens.

    >>> g = torch.Generator().manual_seed(0)
    >>> sample(lambda i: torch.zeros(*i.shape, 3), torch.tensor([[0]]), 5, generator=g).shape
    torch.Size([1, 6])
    """
    ids, fn = _check_ids(ids), as_logits_fn(model)
    return _decode(ids, max_new_tokens, eos_id, lambda ids: torch.multinomial(
        filtered_distribution(next_token_logits(fn, ids), ids, temperature, top_k, top_p, repetition_penalty),
        1, generator=generator).squeeze(1))


@torch.no_grad()
def beam_search(model: Any, ids: torch.Tensor, max_new_tokens: int, num_beams: int = 4,
                length_penalty: float = 1.0, eos_id: int | None = None,
                return_all: bool = False) -> torch.Tensor | list[tuple[torch.Tensor, float]]:
    """Keep the ``num_beams`` most likely partial sequences (sum of log-probabilities) at every step.

    ``ids`` is one prompt ``(1, T)``. A beam that emits ``eos_id`` is finished; finished beams are
    ranked by ``sum log p / new_length ** length_penalty``. Returns the best sequence ``(1, T + n)``, or
    with ``return_all`` every finished ``(sequence, score)`` pair, best first.

    >>> beam_search(lambda i: F.one_hot((i + 1) % 5, 5).float(), torch.tensor([[0]]), 3, num_beams=2)
    tensor([[0, 1, 2, 3]])
    """
    ids, fn = _check_ids(ids), as_logits_fn(model)
    _check_new(max_new_tokens)
    if ids.shape[0] != 1:
        raise ValueError(f"beam_search decodes one prompt at a time, got a batch of {ids.shape[0]}: loop over them")
    if int(num_beams) < 1:
        raise ValueError(f"num_beams must be at least 1, got {num_beams}")
    prompt_len = ids.shape[1]
    beams, scores = ids, torch.zeros(1, device=ids.device)
    finished: list[tuple[torch.Tensor, float]] = []
    for step in range(int(max_new_tokens)):
        logp = F.log_softmax(next_token_logits(fn, beams), dim=-1)        # (n_beams, V)
        vocab = logp.shape[-1]
        total = (scores[:, None] + logp).reshape(-1)
        top, flat = torch.topk(total, min(2 * num_beams, total.numel()))
        new_beams, new_scores = [], []
        for score, index in zip(top.tolist(), flat.tolist()):
            beam, token = divmod(index, vocab)
            seq = torch.cat([beams[beam], beams.new_tensor([token])])
            if eos_id is not None and token == eos_id:
                finished.append((seq[None], score / ((seq.numel() - prompt_len) ** length_penalty)))
                continue
            new_beams.append(seq)
            new_scores.append(score)
            if len(new_beams) == num_beams:
                break
        beams, scores = torch.stack(new_beams), torch.tensor(new_scores, device=ids.device)
        if eos_id is not None and len(finished) >= num_beams:
            best_alive = float(scores.max()) / ((beams.shape[1] - prompt_len) ** length_penalty)
            if sorted(s for _, s in finished)[-num_beams] >= best_alive:
                break
    n_new = beams.shape[1] - prompt_len
    for seq, score in zip(beams, scores.tolist()):
        finished.append((seq[None], score / (max(n_new, 1) ** length_penalty)))
    finished.sort(key=lambda pair: -pair[1])
    return finished if return_all else finished[0][0]


def generate(model: Any, ids: torch.Tensor, max_new_tokens: int, strategy: str = "sample", **kwargs: Any) -> torch.Tensor:
    """Dispatch to :func:`greedy`, :func:`sample` or :func:`beam_search` by name.

    >>> generate(lambda i: F.one_hot((i + 1) % 5, 5).float(), torch.tensor([[0]]), 2, strategy="greedy")
    tensor([[0, 1, 2]])
    """
    funcs = {"greedy": greedy, "sample": sample, "beam": beam_search}
    if strategy not in funcs:
        raise ValueError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    return funcs[strategy](model, ids, max_new_tokens, **kwargs)
