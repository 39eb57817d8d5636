"""A Llama-style decoder from scratch that loads the weights of a ``transformers`` ``LlamaForCausalLM``.

``embed → n × [x + attn(rms(x)); x + mlp(rms(x))] → rms → lm_head``, with rotary position embeddings,
grouped-query attention and a SwiGLU MLP (the blocks of :mod:`tutorlib.llm.layers`), an optional
:class:`~tutorlib.llm.kv_cache.KVCache` and greedy :func:`generate`. :meth:`Llama.from_hf` copies the weights
of a Hugging Face model (e.g. the bundled SmolLM2-135M-Instruct) and then gives the same logits.

>>> import torch
>>> cfg = LlamaConfig(vocab_size=97, d_model=32, n_layer=2, n_head=4, n_kv_head=2, d_ff=64)
>>> model = Llama(cfg)
>>> model(torch.tensor([[1, 2, 3]])).shape
torch.Size([1, 3, 97])
>>> generate(model, torch.tensor([[1, 2, 3]]), max_new_tokens=4).shape
torch.Size([1, 7])
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tutorlib.llm.kv_cache import KVCache
from tutorlib.llm.layers import RMSNorm, SwiGLU, apply_rope, causal_attention, rope_cos_sin

__all__ = ["LlamaConfig", "Attention", "Block", "Llama", "hf_to_ours", "generate", "generate_greedy",
           "compare_hidden_states"]


@dataclass
class LlamaConfig:
    """Sizes of a :class:`Llama`. ``head_dim`` defaults to ``d_model // n_head``.

    >>> LlamaConfig(vocab_size=49152, d_model=576, n_layer=30, n_head=9, n_kv_head=3, d_ff=1536).head_dim
    64
    """

    vocab_size: int = 49152
    d_model: int = 576
    n_layer: int = 30
    n_head: int = 9
    n_kv_head: int = 3
    d_ff: int = 1536
    rope_theta: float = 10000.0
    rms_eps: float = 1e-5
    tie_embeddings: bool = True
    max_position: int = 8192
    head_dim: int | None = None

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layer", "n_head", "n_kv_head", "d_ff", "max_position"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head})")
        if self.head_dim is None:
            if self.d_model % self.n_head:
                raise ValueError(f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head}) "
                                 "or give head_dim")
            self.head_dim = self.d_model // self.n_head

    @classmethod
    def from_hf(cls, hf_config: Any) -> "LlamaConfig":
        """The same sizes as a ``transformers.LlamaConfig`` (only the default RoPE, no biases).

        >>> import transformers
        >>> LlamaConfig.from_hf(transformers.LlamaConfig(hidden_size=32, num_attention_heads=4,
        ...     num_key_value_heads=2, num_hidden_layers=2, intermediate_size=64, vocab_size=97)).n_kv_head
        2
        """
        rope = getattr(hf_config, "rope_parameters", None) or {}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type != "default":
            raise NotImplementedError(f"only the default RoPE is implemented, this model uses {rope_type!r}")
        if getattr(hf_config, "attention_bias", False) or getattr(hf_config, "mlp_bias", False):
            raise NotImplementedError("attention/MLP biases are not implemented (Llama has none)")
        if getattr(hf_config, "hidden_act", "silu") != "silu":
            raise NotImplementedError(f"only the SiLU (SwiGLU) MLP is implemented, got {hf_config.hidden_act!r}")
        theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
        return cls(vocab_size=hf_config.vocab_size, d_model=hf_config.hidden_size, n_layer=hf_config.num_hidden_layers,
                   n_head=hf_config.num_attention_heads,
                   n_kv_head=hf_config.num_key_value_heads or hf_config.num_attention_heads,
                   d_ff=hf_config.intermediate_size, rope_theta=float(theta), rms_eps=float(hf_config.rms_norm_eps),
                   tie_embeddings=bool(getattr(hf_config, "tie_word_embeddings", False)),
                   max_position=hf_config.max_position_embeddings, head_dim=getattr(hf_config, "head_dim", None))


class Attention(nn.Module):
    """Grouped-query self-attention with RoPE: ``n_head`` query heads share ``n_kv_head`` key/value heads."""

    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, cfg.n_head * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, cfg.n_kv_head * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, cfg.n_kv_head * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_head * cfg.head_dim, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache | None = None,
                layer: int = 0, return_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)      # (B, H, T, D)
        k = self.k_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)   # (B, H_kv, T, D)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(layer, k, v)                                           # all positions so far
        out, weights = causal_attention(q, k, v, return_weights=return_weights)
        return self.o_proj(out.transpose(1, 2).reshape(B, T, -1)), weights


class Block(nn.Module):
    """One decoder layer: ``x + attn(rms(x))`` then ``x + mlp(rms(x))`` (pre-norm residual)."""

    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.rms_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.rms_eps)
        self.mlp = SwiGLU(cfg.d_model, cfg.d_ff)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache | None = None,
                layer: int = 0, return_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        a, weights = self.attn(self.attn_norm(x), cos, sin, cache, layer, return_weights)
        x = x + a
        return x + self.mlp(self.mlp_norm(x)), weights


class Llama(nn.Module):
    """A Llama-architecture causal language model from scratch.

    ``forward(ids (B, T), cache=None, return_attention=None, hidden_states=False)`` returns the logits
    (B, T, vocab). With a :class:`~tutorlib.llm.kv_cache.KVCache` the ids are the *new* tokens: their positions
    continue after the cached ones and their keys/values are appended to the cache.
    ``return_attention=i`` also returns layer ``i``'s attention weights (B, n_head, T, T_cached + T);
    ``hidden_states=True`` also returns the residual stream: a list of ``n_layer + 1`` tensors (B, T, d_model),
    the embeddings then each block's output (before the final norm). Extras come after the logits, in that
    order: ``logits, weights = model(ids, return_attention=3)``; ``logits, hs = model(ids, hidden_states=True)``.

    >>> m = Llama(LlamaConfig(vocab_size=11, d_model=8, n_layer=2, n_head=2, n_kv_head=1, d_ff=16))
    >>> logits, w, hs = m(torch.tensor([[1, 2, 3]]), return_attention=0, hidden_states=True)
    >>> logits.shape, w.shape, len(hs)
    (torch.Size([1, 3, 11]), torch.Size([1, 2, 3, 3]), 3)
    """

    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model, cfg.rms_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def _check(self, ids: torch.Tensor, cache: KVCache | None) -> None:
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
            shape = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise ValueError(f"expected ids of shape (B, T), got {shape}: add a batch dimension with ids[None]")
        if ids.dtype not in (torch.long, torch.int32, torch.int64):
            raise ValueError(f"expected integer token ids, got {ids.dtype}")
        if ids.shape[1] == 0:
            raise ValueError("ids is empty: give at least one token")
        if ids.min() < 0 or ids.max() >= self.config.vocab_size:
            raise ValueError(f"token ids must be in [0, {self.config.vocab_size}), got range "
                             f"[{int(ids.min())}, {int(ids.max())}]: was the text encoded with this model's tokenizer?")
        start = cache.length if cache is not None else 0
        if start + ids.shape[1] > self.config.max_position:
            raise ValueError(f"{start + ids.shape[1]} positions exceed max_position={self.config.max_position}")

    def features(self, ids: torch.Tensor, cache: KVCache | None = None, return_attention: int | None = None,
                 hidden_states: bool = False) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor] | None]:
        """The final-normed hidden states (B, T, d_model), the chosen layer's attention weights, the residual stream."""
        self._check(ids, cache)
        if return_attention is not None and not -self.config.n_layer <= return_attention < self.config.n_layer:
            raise ValueError(f"return_attention must be a layer index in [0, {self.config.n_layer}), "
                             f"got {return_attention}")
        if return_attention is not None and return_attention < 0:
            return_attention += self.config.n_layer
        start = cache.length if cache is not None else 0
        positions = torch.arange(start, start + ids.shape[1], device=ids.device)
        x = self.embed(ids)
        cos, sin = rope_cos_sin(positions, self.config.head_dim, self.config.rope_theta, dtype=x.dtype)
        trace = [x] if hidden_states else None
        weights = None
        for i, block in enumerate(self.blocks):
            x, w = block(x, cos, sin, cache, i, return_weights=(i == return_attention))
            if w is not None:
                weights = w
            if trace is not None:
                trace.append(x)
        return self.norm(x), weights, trace

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None, return_attention: int | None = None,
                hidden_states: bool = False) -> Any:
        h, weights, trace = self.features(ids, cache, return_attention, hidden_states)
        logits = self.lm_head(h)
        out: tuple = (logits,)
        if return_attention is not None:
            out += (weights,)
        if hidden_states:
            out += (trace,)
        return out[0] if len(out) == 1 else out

    def generate(self, ids: torch.Tensor, max_new_tokens: int, *, use_cache: bool = True,
                 eos_token_id: int | list[int] | None = None) -> torch.Tensor:
        """Greedy decoding, see :func:`generate`."""
        return generate(self, ids, max_new_tokens, use_cache=use_cache, eos_token_id=eos_token_id)

    @classmethod
    def from_hf(cls, hf_model: Any, state_dict: dict[str, torch.Tensor] | None = None) -> "Llama":
        """A :class:`Llama` with the weights of a ``transformers`` ``LlamaForCausalLM``.

        Pass the model itself, or its config and ``state_dict``: ``Llama.from_hf(hf_config, state_dict)``.
        Names are mapped by :func:`hf_to_ours`; every weight must be used and every parameter filled.

        >>> import transformers
        >>> hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(hidden_size=32, num_attention_heads=4,
        ...     num_key_value_heads=2, num_hidden_layers=2, intermediate_size=64, vocab_size=97))
        >>> Llama.from_hf(hf).config.n_layer
        2
        """
        hf_config = getattr(hf_model, "config", hf_model)
        if state_dict is None:
            if not hasattr(hf_model, "state_dict"):
                raise ValueError("give a transformers LlamaForCausalLM, or its config and state_dict")
            state_dict = hf_model.state_dict()
        cfg = LlamaConfig.from_hf(hf_config)
        model = cls(cfg)
        ours = {}
        for name, tensor in state_dict.items():
            new = hf_to_ours(name)
            if new is None:
                continue
            ours[new] = tensor
        if cfg.tie_embeddings:
            ours.pop("lm_head.weight", None)
        own = dict(model.named_parameters())
        missing = sorted(set(own) - set(ours))
        unexpected = sorted(set(ours) - set(own))
        if missing or unexpected:
            raise ValueError(f"weights do not match the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
        with torch.no_grad():
            for name, tensor in ours.items():
                if own[name].shape != tensor.shape:
                    raise ValueError(f"{name}: expected shape {tuple(own[name].shape)}, got {tuple(tensor.shape)}")
                own[name].copy_(tensor)
        return model.to(dtype=next(iter(ours.values())).dtype)


_HF_NAMES = [
    (r"model\.embed_tokens\.weight", "embed.weight"),
    (r"model\.norm\.weight", "norm.weight"),
    (r"lm_head\.weight", "lm_head.weight"),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", r"blocks.\1.attn_norm.weight"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", r"blocks.\1.mlp_norm.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.([qkvo])_proj\.weight", r"blocks.\1.attn.\2_proj.weight"),
    (r"model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.weight", r"blocks.\1.mlp.\2_proj.weight"),
]


def hf_to_ours(name: str) -> str | None:
    """Our parameter name for a ``transformers`` Llama weight name (``None`` for buffers such as ``rotary_emb``).

    >>> hf_to_ours("model.layers.3.self_attn.q_proj.weight")
    'blocks.3.attn.q_proj.weight'
    >>> hf_to_ours("model.layers.0.post_attention_layernorm.weight")
    'blocks.0.mlp_norm.weight'
    """
    for pattern, repl in _HF_NAMES:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, repl, name)
    if "rotary_emb" in name:
        return None
    raise ValueError(f"unknown weight {name!r}: not a Llama model?")


@torch.inference_mode()
def generate(model: Llama, ids: torch.Tensor, max_new_tokens: int, *, use_cache: bool = True,
             eos_token_id: int | list[int] | None = None, cache: KVCache | None = None) -> torch.Tensor:
    """Greedy decoding: append ``max_new_tokens`` argmax tokens to ``ids`` (B, T); returns (B, T + new).

    With ``use_cache`` (default) the prompt is run once to fill a :class:`~tutorlib.llm.kv_cache.KVCache` and
    each step feeds only the new token; without it every step re-runs the whole sequence (same tokens, slower).
    Generation stops when every row has produced ``eos_token_id`` (kept in the output); rows that finished
    earlier are padded with it, as ``transformers``' ``generate`` does when ``pad_token_id == eos_token_id``.
    ``cache`` lets the caller keep the cache (e.g. to measure its ``nbytes()``).

    >>> m = Llama(LlamaConfig(vocab_size=11, d_model=8, n_layer=1, n_head=2, n_kv_head=1, d_ff=16))
    >>> p = torch.tensor([[1, 2]])
    >>> torch.equal(generate(m, p, 5), generate(m, p, 5, use_cache=False))
    True
    """
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        raise ValueError(f"expected ids of shape (B, T), got {getattr(ids, 'shape', type(ids))}: add a batch "
                         "dimension with ids[None]")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    eos = None if eos_token_id is None else torch.tensor(
        [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id), device=ids.device)
    pad = None if eos is None else int(eos[0])
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    if use_cache:
        if cache is None:
            cache = KVCache(max_len=ids.shape[1] + max_new_tokens)
        elif cache.length:
            raise ValueError("the cache given to generate must be empty: call cache.reset()")
    out = [ids]
    step_input = ids
    for _ in range(max_new_tokens):
        if use_cache:
            h, _, _ = model.features(step_input, cache)
        else:
            h, _, _ = model.features(torch.cat(out, dim=1))
        nxt = model.lm_head(h[:, -1]).argmax(-1)                       # (B,)
        if eos is not None:
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            done = done | torch.isin(nxt, eos)
        step_input = nxt[:, None]
        out.append(step_input)
        if eos is not None and bool(done.all()):
            break
    return torch.cat(out, dim=1)


#: :func:`generate` under the name ``tutorlib.llm`` exports it by (``tutorlib.llm.generate`` is the decoding one).
generate_greedy = generate


@torch.inference_mode()
def compare_hidden_states(model: Llama, hf_model: Any, ids: torch.Tensor) -> list[float]:
    """Max abs difference of the residual stream, layer by layer, between ``model`` and a ``transformers`` Llama.

    Entry 0 is the embeddings, entry ``i`` the output of block ``i``; ``transformers``' last hidden state is
    taken after the final norm, so ours is normed before comparing. The last entry is the logits' difference.
    Where a from-scratch model disagrees, the first large entry says which layer to look at.

    >>> import transformers
    >>> hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(hidden_size=32, num_attention_heads=4,
    ...     num_key_value_heads=2, num_hidden_layers=2, intermediate_size=64, vocab_size=97)).eval()
    >>> diffs = compare_hidden_states(Llama.from_hf(hf), hf, torch.tensor([[1, 2, 3]]))
    >>> len(diffs), max(diffs) < 1e-5
    (4, True)
    """
    logits, ours = model(ids, hidden_states=True)
    out = hf_model(ids, output_hidden_states=True)
    theirs = list(out.hidden_states)
    if len(theirs) != len(ours):
        raise ValueError(f"{len(ours)} hidden states here vs {len(theirs)} in the transformers model: "
                         "not the same number of layers")
    ours = ours[:-1] + [model.norm(ours[-1])]
    diffs = [(a.float() - b.float()).abs().max().item() for a, b in zip(ours, theirs)]
    return diffs + [(logits.float() - out.logits.float()).abs().max().item()]
