"""Mixture of Experts: top-k routing, the Switch/GShard load-balancing loss, an MoE feed-forward layer, and TinyGPT with MoE blocks.

A router scores every token for every expert; each token goes to its ``k`` best experts and their
outputs are mixed with the renormalised router weights. Without help the router collapses onto a
few experts, so training adds the balancing loss of Switch Transformer (Fedus et al., 2021, eq. 4):
``n_experts · Σ_i f_i · P_i`` with ``f_i`` the fraction of token→expert assignments sent to expert
``i`` and ``P_i`` the mean router probability of expert ``i``; it equals 1 when routing is uniform.

>>> import torch
>>> layer = MoELayer(d_model=8, d_hidden=16, n_experts=4, k=2)
>>> layer(torch.randn(2, 5, 8)).shape, layer.last_aux_loss.item() > 0
(torch.Size([2, 5, 8]), True)
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from tutorlib.models import GPTConfig, TinyGPT

__all__ = ["top_k_routing", "load_balancing_loss", "MoELayer", "DenseFFN", "moe_gpt", "dense_gpt", "moe_aux_loss",
           "expert_counts", "lm_step_fn"]


def top_k_routing(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Route each token to its ``k`` best experts.

    ``logits``: router scores ``(N, n_experts)``. Returns ``(weights, indices, probs)``: ``weights``
    ``(N, k)`` are the softmax probabilities of the chosen experts renormalised to sum to 1 per token,
    ``indices`` ``(N, k)`` the chosen experts (best first), ``probs`` ``(N, n_experts)`` the full softmax.

    >>> w, i, p = top_k_routing(torch.tensor([[0.0, 2.0, 1.0]]), k=2)
    >>> i.tolist(), [round(x, 3) for x in w[0].tolist()]
    ([[1, 2]], [0.731, 0.269])
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ValueError(f"logits must be a tensor (N, n_experts), got {getattr(logits, 'shape', type(logits))}: "
                         "flatten batch and time first")
    if not 1 <= k <= logits.shape[1]:
        raise ValueError(f"k must be between 1 and n_experts={logits.shape[1]}, got {k}")
    probs = torch.softmax(logits, dim=-1)
    top_p, idx = probs.topk(k, dim=-1)
    return top_p / top_p.sum(-1, keepdim=True), idx, probs


def load_balancing_loss(probs: torch.Tensor, indices: torch.Tensor, n_experts: int | None = None) -> torch.Tensor:
    """Switch/GShard auxiliary loss ``n_experts · Σ_i f_i · P_i`` (1.0 for perfectly uniform routing).

    ``probs`` ``(N, E)`` router softmax; ``indices`` ``(N, k)`` chosen experts. ``f_i`` counts all ``k``
    assignments (fraction of the ``N·k`` slots that went to expert ``i``); it has no gradient, ``P_i`` does.

    >>> p = torch.full((4, 2), 0.5); i = torch.tensor([[0], [1], [0], [1]])
    >>> load_balancing_loss(p, i).item()
    1.0
    """
    if probs.dim() != 2 or indices.dim() != 2 or probs.shape[0] != indices.shape[0]:
        raise ValueError(f"expected probs (N, E) and indices (N, k), got {tuple(probs.shape)} and {tuple(indices.shape)}")
    E = n_experts or probs.shape[1]
    counts = torch.zeros(E, device=probs.device, dtype=probs.dtype)
    counts.scatter_add_(0, indices.flatten(), torch.ones(indices.numel(), device=probs.device, dtype=probs.dtype))
    f = counts / indices.numel()
    P = probs.mean(0)
    return E * (f * P).sum()


class DenseFFN(nn.Module):
    """The GPT feed-forward block ``Linear → GELU → Linear`` with a chosen hidden size.

    >>> DenseFFN(8, 32)(torch.zeros(3, 8)).shape
    torch.Size([3, 8])
    """

    def __init__(self, d_model: int, d_hidden: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, d_hidden)
        self.out = nn.Linear(d_hidden, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.gelu(self.fc(x), approximate="tanh"))


class MoELayer(nn.Module):
    """Top-``k`` routed mixture of ``n_experts`` feed-forward experts (drop-in for a GPT block's MLP).

    After each forward: ``last_aux_loss`` (the balancing loss), ``last_counts`` (assignments per expert)
    and ``last_probs_mean`` (mean router probability per expert). Tokens are dispatched by index (each
    expert runs only on its tokens), so compute per token is ``k`` experts, not ``n_experts``. With ``k=1`` the
    expert output is scaled by its raw router probability (as in Switch Transformer): renormalised, the weight
    would always be 1 and the router would learn only from the balancing loss.

    >>> m = MoELayer(4, 8, n_experts=3, k=1); _ = m(torch.randn(10, 4)); int(m.last_counts.sum())
    10
    """

    def __init__(self, d_model: int, d_hidden: int, n_experts: int = 4, k: int = 2, router_noise: float = 0.0) -> None:
        super().__init__()
        if n_experts < 1 or not 1 <= k <= n_experts:
            raise ValueError(f"need n_experts >= 1 and 1 <= k <= n_experts, got n_experts={n_experts}, k={k}")
        self.router = nn.Linear(d_model, n_experts, bias=False)
        nn.init.normal_(self.router.weight, std=0.02)
        self.experts = nn.ModuleList(DenseFFN(d_model, d_hidden) for _ in range(n_experts))
        self.n_experts, self.k, self.router_noise = n_experts, k, router_noise
        self.last_aux_loss = torch.zeros(())
        self.last_counts = torch.zeros(n_experts)
        self.last_probs_mean = torch.zeros(n_experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        if shape[-1] != self.router.in_features:
            raise ValueError(f"expected last dimension {self.router.in_features}, got {tuple(shape)}")
        h = x.reshape(-1, shape[-1])
        logits = self.router(h)
        if self.training and self.router_noise > 0:
            logits = logits + self.router_noise * torch.randn_like(logits)
        w, idx, probs = top_k_routing(logits, self.k)
        if self.k == 1:  # Switch: scale by the raw gate probability, else the router gets no gradient from the task
            w = probs.gather(1, idx)
        out = torch.zeros_like(h)
        for e, expert in enumerate(self.experts):
            tok, slot = torch.nonzero(idx == e, as_tuple=True)
            if tok.numel():
                out.index_add_(0, tok, w[tok, slot, None] * expert(h[tok]))
        self.last_aux_loss = load_balancing_loss(probs, idx, self.n_experts)
        self.last_counts = torch.bincount(idx.flatten(), minlength=self.n_experts).detach().cpu()
        self.last_probs_mean = probs.mean(0).detach().cpu()
        return out.reshape(shape)


def _replace_mlps(model: TinyGPT, make: callable) -> TinyGPT:
    for block in model.blocks:
        block.mlp = make()
    model.apply(model._init)
    return model


def moe_gpt(cfg: GPTConfig, n_experts: int = 4, k: int = 1, d_hidden: int | None = None, seed: int = 0) -> TinyGPT:
    """A :class:`~tutorlib.models.TinyGPT` whose blocks' MLPs are :class:`MoELayer` s (the model class is unchanged).

    ``d_hidden`` (per expert) defaults to ``4 * d_model`` like the dense GPT.

    >>> m = moe_gpt(GPTConfig(block_size=8, n_layer=1, d_model=16, n_head=2), n_experts=4, k=1)
    >>> m.loss(torch.randint(0, 128, (2, 8))).item() > 0, type(m.blocks[0].mlp).__name__
    (True, 'MoELayer')
    """
    torch.manual_seed(seed)
    model = TinyGPT(copy.deepcopy(cfg))
    dh = d_hidden or 4 * cfg.d_model
    model = _replace_mlps(model, lambda: MoELayer(cfg.d_model, dh, n_experts, k))
    return model


def dense_gpt(cfg: GPTConfig, d_hidden: int, seed: int = 0) -> TinyGPT:
    """A TinyGPT whose MLPs have hidden size ``d_hidden`` (use ``k * d_hidden_expert`` for equal compute per token).

    >>> dense_gpt(GPTConfig(block_size=8, n_layer=1, d_model=16, n_head=2), 32).blocks[0].mlp.fc.out_features
    32
    """
    torch.manual_seed(seed)
    return _replace_mlps(TinyGPT(copy.deepcopy(cfg)), lambda: DenseFFN(cfg.d_model, d_hidden))


def moe_aux_loss(model: nn.Module) -> torch.Tensor:
    """Sum of ``last_aux_loss`` over the model's MoE layers (0 if it has none).

    >>> moe_aux_loss(nn.Linear(2, 2)).item()
    0.0
    """
    losses = [m.last_aux_loss for m in model.modules() if isinstance(m, MoELayer)]
    return torch.stack(losses).sum() if losses else torch.zeros(())


def expert_counts(model: nn.Module) -> torch.Tensor:
    """Token assignments per expert of each MoE layer at the last forward, shape ``(n_layers, n_experts)``.

    >>> m = moe_gpt(GPTConfig(block_size=8, n_layer=2, d_model=16, n_head=2), n_experts=3)
    >>> _ = m(torch.zeros(1, 8, dtype=torch.long)); expert_counts(m).shape
    torch.Size([2, 3])
    """
    rows = [m.last_counts for m in model.modules() if isinstance(m, MoELayer)]
    if not rows:
        raise ValueError("the model has no MoELayer: build it with moe_gpt(...)")
    return torch.stack(rows)


def lm_step_fn(aux_weight: float = 0.01, log: list | None = None):
    """A ``Trainer`` ``step_fn`` for language modelling on batches of token ids ``(B, T+1)``: LM loss + ``aux_weight`` × balancing loss.

    If ``log`` is a list, each step appends ``{"lm": …, "aux": …, "counts": (layers, experts)}`` (MoE models only).

    >>> from tutorlib.train import Trainer
    >>> m = moe_gpt(GPTConfig(block_size=8, n_layer=1, d_model=16, n_head=2))
    >>> t = Trainer(m, step_fn=lm_step_fn(), progress=False, log=False)
    >>> sorted(t.compute((torch.randint(0, 128, (2, 9)),)))
    ['loss']
    """
    if aux_weight < 0:
        raise ValueError(f"aux_weight must be >= 0, got {aux_weight}")

    def step(trainer, batch):  # noqa: ANN001, ANN202
        idx = batch[0] if isinstance(batch, (list, tuple)) else batch
        model = trainer.model
        lm = model.loss(idx)
        aux = moe_aux_loss(model).to(lm.device)
        if log is not None and model.training:
            entry = {"lm": float(lm.detach()), "aux": float(aux.detach())}
            if any(isinstance(m, MoELayer) for m in model.modules()):
                entry["counts"] = expert_counts(model)
            log.append(entry)
        return {"loss": lm + aux_weight * aux}

    return step
