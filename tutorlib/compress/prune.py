"""Magnitude pruning: masks that survive training, ``torch.nn.utils.prune`` for comparison, structured removal.

Unstructured pruning zeros the weights of smallest magnitude. Zeroing them once is not enough: the
next optimizer step moves them away from zero again. Here a mask is attached to each pruned weight
as a parametrization (``weight = original * mask``), so training can never revive a pruned weight;
:func:`make_permanent` bakes the zeros in afterwards.

Structured pruning removes whole neurons, attention heads or channels and builds smaller layers,
so the model really gets smaller and faster (a dense zero still costs a multiply).

>>> import torch
>>> from torch import nn
>>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
>>> masks = prune_magnitude(model, 0.5)                 # global, every Linear
>>> round(weight_sparsity(model), 2)
0.5
>>> _ = make_permanent(model)                          # bake the zeros in, drop the masks
>>> small = shrink_linear_pair(model[0], model[2], keep_fraction=0.5)
>>> small[0].out_features
8
"""

from __future__ import annotations

import copy
import warnings
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = [
    "DEFAULT_TYPES",
    "select_layers",
    "magnitude_mask",
    "global_magnitude_masks",
    "MaskParametrization",
    "apply_masks",
    "prune_magnitude",
    "make_permanent",
    "is_pruned",
    "weight_sparsity",
    "layer_sparsities",
    "torch_prune",
    "sparse_size_bytes",
    "neuron_scores",
    "remove_neurons",
    "shrink_linear_pair",
    "bert_layers",
    "prune_ffn_neurons",
    "head_scores",
    "remove_attention_heads",
    "prune_attention_heads",
    "remove_conv_channels",
    "shrink_small_cnn",
]

#: Layer types pruned by default: the ones that hold nearly all the weights of the course's models.
DEFAULT_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d)


def _check_fraction(value: float, name: str, allow_one: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in [0, 1), got {type(value).__name__}")
    upper_ok = value <= 1.0 if allow_one else value < 1.0
    if not (0.0 <= value and upper_ok):
        raise ValueError(f"{name} must be in [0, {'1]' if allow_one else '1)'}, got {value}: e.g. 0.5 prunes half")
    return float(value)


def select_layers(model: nn.Module, types: Sequence[type[nn.Module]] = DEFAULT_TYPES,
                  skip: Iterable[str] = ()) -> dict[str, nn.Module]:
    """The layers to prune: every module of one of ``types`` whose name contains none of ``skip``.

    >>> m = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> list(select_layers(m, skip=("2",)))
    ['0']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    skip = tuple(skip)
    layers = {name: m for name, m in model.named_modules()
              if isinstance(m, tuple(types)) and name and not any(s in name for s in skip)}
    if not layers and isinstance(model, tuple(types)):
        layers = {"": model}
    if not layers:
        raise ValueError(f"no layer of type {[t.__name__ for t in types]} to prune in {type(model).__name__} "
                         f"(skip={list(skip)}): pass types=... that the model contains")
    return layers


def _weight(module: nn.Module) -> torch.Tensor:
    """The effective (masked) weight of a layer, whether or not it is parametrized."""
    return module.weight


def _n_to_prune(numel: int, sparsity: float) -> int:
    # The same rounding as torch.nn.utils.prune (round(amount * n)), so the masks agree exactly.
    return int(round(sparsity * numel))


def _smallest_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """A flat 0/1 float mask with 0 at the ``k`` smallest ``scores`` (ties broken by position)."""
    mask = torch.ones_like(scores, dtype=torch.float32)
    if k <= 0:
        return mask
    if k >= scores.numel():
        return torch.zeros_like(mask)
    threshold = torch.kthvalue(scores, k).values        # O(n) selection, much faster than topk for large k
    below = scores < threshold
    mask[below] = 0
    missing = k - int(below.sum())
    if missing > 0:                                      # fill up from the entries equal to the threshold
        ties = torch.nonzero(scores == threshold).flatten()[:missing]
        mask[ties] = 0
    return mask


def magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """A 0/1 mask (same shape and dtype as ``weight``) that zeros the ``sparsity`` fraction of smallest |w|.

    >>> magnitude_mask(torch.tensor([0.1, -3.0, 0.5, 2.0]), 0.5)
    tensor([0., 1., 0., 1.])
    """
    if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
        raise TypeError(f"weight must be a floating-point tensor, got {type(weight).__name__}")
    sparsity = _check_fraction(sparsity, "sparsity", allow_one=True)
    k = _n_to_prune(weight.numel(), sparsity)
    flat = _smallest_k_mask(weight.detach().abs().flatten().float(), k)
    return flat.view_as(weight).to(weight.dtype)


def global_magnitude_masks(weights: Sequence[torch.Tensor], sparsity: float) -> list[torch.Tensor]:
    """Masks for several tensors with ONE threshold: the smallest |w| over all of them are zeroed.

    Layers with many small weights lose more than others; the total fraction zeroed is ``sparsity``.

    >>> a, b = torch.tensor([1.0, 2.0]), torch.tensor([0.1, 0.2, 3.0, 4.0])
    >>> [m.tolist() for m in global_magnitude_masks([a, b], 0.5)]
    [[0.0, 1.0], [0.0, 0.0, 1.0, 1.0]]
    """
    if isinstance(weights, torch.Tensor) or not weights:
        raise TypeError("weights must be a non-empty list of tensors (one per layer)")
    sparsity = _check_fraction(sparsity, "sparsity", allow_one=True)
    flat = torch.cat([w.detach().abs().flatten().to(torch.float32) for w in weights])
    mask = _smallest_k_mask(flat, _n_to_prune(flat.numel(), sparsity))
    out, start = [], 0
    for w in weights:
        out.append(mask[start:start + w.numel()].view_as(w).to(w.dtype))
        start += w.numel()
    return out


class MaskParametrization(nn.Module):
    """``weight = original * mask``: registered with ``torch.nn.utils.parametrize`` so pruned weights stay zero.

    The gradient of a masked entry is zero, and whatever the optimizer does to ``original`` there,
    the weight the layer uses stays exactly zero.

    >>> layer = nn.Linear(2, 2)
    >>> parametrize.register_parametrization(layer, "weight", MaskParametrization(torch.eye(2)))
    ... # doctest: +ELLIPSIS
    ParametrizedLinear(...)
    >>> int((layer.weight == 0).sum())
    2
    """

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.detach().clone())

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


def _mask_param(module: nn.Module) -> MaskParametrization | None:
    if not parametrize.is_parametrized(module, "weight"):
        return None
    for p in module.parametrizations.weight:  # type: ignore[attr-defined]
        if isinstance(p, MaskParametrization):
            return p
    return None


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """Attach ``masks`` (module name → 0/1 tensor) to the weights of ``model`` (in place); returns the model.

    A layer that already has a mask gets the product of old and new masks (pruning only grows).

    >>> m = nn.Sequential(nn.Linear(2, 2))
    >>> _ = apply_masks(m, {"0": torch.tensor([[1.0, 0.0], [0.0, 1.0]])})
    >>> bool(m[0].weight[0, 1] == 0)
    True
    """
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        if name not in modules:
            raise KeyError(f"no module named {name!r} in the model; names look like {list(modules)[1:4]}")
        module = modules[name]
        if not hasattr(module, "weight") or not isinstance(module.weight, torch.Tensor):
            raise TypeError(f"module {name!r} ({type(module).__name__}) has no weight tensor to mask")
        if tuple(mask.shape) != tuple(module.weight.shape):
            raise ValueError(f"mask for {name!r} has shape {tuple(mask.shape)}, the weight has {tuple(module.weight.shape)}")
        mask = mask.to(device=module.weight.device, dtype=module.weight.dtype)
        existing = _mask_param(module)
        if existing is not None:
            existing.mask.mul_(mask)
        else:
            parametrize.register_parametrization(module, "weight", MaskParametrization(mask))
    return model


def prune_magnitude(model: nn.Module, sparsity: float, scope: str = "global",
                    types: Sequence[type[nn.Module]] = DEFAULT_TYPES, skip: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """Prune ``model`` in place to ``sparsity`` by weight magnitude; masks stay attached through training.

    ``scope="global"`` uses one threshold over all selected layers, ``"layer"`` prunes each layer to
    ``sparsity``. Calling it again with a larger sparsity continues from the current zeros
    (iterative pruning). Returns the masks by module name.

    >>> m = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 2))
    >>> _ = prune_magnitude(m, 0.3, scope="layer")
    >>> [round(s, 1) for s in layer_sparsities(m).values()]
    [0.3, 0.3]
    """
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    layers = select_layers(model, types, skip)
    weights = [_weight(m) for m in layers.values()]
    if scope == "global":
        new = global_magnitude_masks(weights, sparsity)
    else:
        new = [magnitude_mask(w, sparsity) for w in weights]
    masks = dict(zip(layers, new))
    apply_masks(model, masks)
    return {name: _mask_param(m).mask.detach().clone() for name, m in layers.items()}  # type: ignore[union-attr]


def is_pruned(model: nn.Module) -> bool:
    """True when some layer of ``model`` carries a pruning mask (ours or ``torch.nn.utils.prune``'s).

    >>> is_pruned(nn.Linear(2, 2))
    False
    """
    return any(_mask_param(m) is not None or hasattr(m, "weight_mask") for m in model.modules())


def make_permanent(model: nn.Module) -> nn.Module:
    """Remove the masks (ours and ``torch.nn.utils.prune``'s), keeping the zeros in plain weights; in place.

    Do this before saving, quantizing or measuring size: masks store a second copy of every weight.

    >>> m = nn.Linear(4, 4); _ = prune_magnitude(m, 0.5); _ = make_permanent(m)
    >>> is_pruned(m), round(float((m.weight == 0).float().mean()), 2)
    (False, 0.5)
    """
    from torch.nn.utils import prune as tprune

    for module in model.modules():
        if _mask_param(module) is not None:
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        if hasattr(module, "weight_mask") and hasattr(module, "weight_orig"):
            tprune.remove(module, "weight")
    return model


def layer_sparsities(model: nn.Module, types: Sequence[type[nn.Module]] = DEFAULT_TYPES,
                     skip: Iterable[str] = ()) -> dict[str, float]:
    """Fraction of exactly-zero weights in each selected layer.

    >>> layer_sparsities(nn.Sequential(nn.Linear(2, 2)))
    {'0': 0.0}
    """
    return {name: float((_weight(m) == 0).float().mean()) for name, m in select_layers(model, types, skip).items()}


def weight_sparsity(model: nn.Module, types: Sequence[type[nn.Module]] = DEFAULT_TYPES,
                    skip: Iterable[str] = ()) -> float:
    """Fraction of exactly-zero weights over all selected layers together.

    >>> weight_sparsity(nn.Linear(3, 3))
    0.0
    """
    layers = select_layers(model, types, skip).values()
    zeros = sum(int((_weight(m) == 0).sum()) for m in layers)
    total = sum(_weight(m).numel() for m in layers)
    return zeros / max(total, 1)


def torch_prune(model: nn.Module, sparsity: float, scope: str = "global",
                types: Sequence[type[nn.Module]] = DEFAULT_TYPES, skip: Iterable[str] = (),
                permanent: bool = False) -> dict[str, torch.Tensor]:
    """The same magnitude pruning with ``torch.nn.utils.prune`` (L1 unstructured); returns its masks by name.

    Without ``permanent`` the model keeps ``weight_orig`` + ``weight_mask`` (twice the storage);
    with it, ``prune.remove`` bakes the zeros in.

    >>> m = nn.Linear(4, 4)
    >>> masks = torch_prune(m, 0.25, permanent=True)
    >>> int((m.weight == 0).sum())
    4
    """
    from torch.nn.utils import prune as tprune

    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    sparsity = _check_fraction(sparsity, "sparsity", allow_one=True)
    layers = select_layers(model, types, skip)
    if scope == "global":
        tprune.global_unstructured([(m, "weight") for m in layers.values()],
                                   pruning_method=tprune.L1Unstructured, amount=sparsity)
    else:
        for m in layers.values():
            tprune.l1_unstructured(m, "weight", amount=sparsity)
    masks = {name: m.weight_mask.detach().clone() for name, m in layers.items()}
    if permanent:
        for m in layers.values():
            tprune.remove(m, "weight")
    return masks


def sparse_size_bytes(model: nn.Module, types: Sequence[type[nn.Module]] = DEFAULT_TYPES,
                      skip: Iterable[str] = (), index_dtype: torch.dtype = torch.int32) -> dict[str, int]:
    """Serialized size of the model's state_dict stored dense vs with pruned weights in CSR format.

    CSR keeps each non-zero value plus a column index (``index_dtype``) and one offset per row, so
    it only saves space well beyond 50 % sparsity for fp32 values with int32 indices.

    >>> m = nn.Linear(64, 64); _ = prune_magnitude(m, 0.9); _ = make_permanent(m)
    >>> s = sparse_size_bytes(m); s["csr"] < s["dense"]
    True
    """
    import io

    if is_pruned(model):
        raise ValueError("the model still carries pruning masks: call make_permanent(model) (on a copy) first")
    names = {f"{n}.weight" if n else "weight" for n in select_layers(model, types, skip)}
    dense_sd = model.state_dict()
    sparse_sd = {}
    for key, t in dense_sd.items():
        if key in names and t.dim() >= 2:
            with warnings.catch_warnings():  # "sparse CSR support is in beta"
                warnings.simplefilter("ignore", UserWarning)
                mat = t.detach().reshape(t.shape[0], -1).to_sparse_csr()
            sparse_sd[key] = (mat.crow_indices().to(index_dtype), mat.col_indices().to(index_dtype), mat.values(),
                              torch.tensor(t.shape))
        else:
            sparse_sd[key] = t

    def size(obj: object) -> int:
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getbuffer().nbytes

    return {"dense": size(dense_sd), "csr": size(sparse_sd)}


# --------------------------------------------------------------------------- structured pruning


def neuron_scores(fc1: nn.Linear, fc2: nn.Linear | None = None, p: float = 1.0) -> torch.Tensor:
    """Importance of each hidden neuron between ``fc1`` and ``fc2``: the Lp norm of its row of ``fc1.weight``.

    With ``fc2`` the score is multiplied by the norm of the neuron's column of ``fc2.weight`` (how
    much its output matters downstream). Without ``fc2`` the ranking is the one of
    ``torch.nn.utils.prune.ln_structured(fc1, "weight", amount, n=p, dim=0)``.

    >>> fc = nn.Linear(2, 3); _ = nn.init.ones_(fc.weight); neuron_scores(fc).tolist()
    [2.0, 2.0, 2.0]
    """
    if not isinstance(fc1, nn.Linear) or (fc2 is not None and not isinstance(fc2, nn.Linear)):
        raise TypeError("fc1 and fc2 must be nn.Linear layers")
    scores = fc1.weight.detach().norm(p=p, dim=1)
    if fc2 is not None:
        if fc2.in_features != fc1.out_features:
            raise ValueError(f"fc1 has {fc1.out_features} outputs but fc2 takes {fc2.in_features} inputs: not a pair")
        scores = scores * fc2.weight.detach().norm(p=p, dim=0)
    return scores


def _keep_index(keep: torch.Tensor | Sequence[int], size: int, what: str) -> torch.Tensor:
    idx = torch.as_tensor(keep, dtype=torch.long).flatten()
    if idx.numel() == 0:
        raise ValueError(f"keep is empty: at least one {what} must remain")
    if idx.min() < 0 or idx.max() >= size:
        raise ValueError(f"keep holds indices outside [0, {size}) for the {size} {what}s")
    if idx.unique().numel() != idx.numel():
        raise ValueError("keep holds repeated indices: each kept unit must appear once")
    return idx.sort().values


def _sliced_linear(layer: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> nn.Linear:
    w = layer.weight.detach()
    b = layer.bias.detach() if layer.bias is not None else None
    if rows is not None:
        w = w[rows.to(w.device)]
        b = b[rows.to(w.device)] if b is not None else None
    if cols is not None:
        w = w[:, cols.to(w.device)]
    new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None:
            new.bias.copy_(b)
    new.train(layer.training)
    return new


def remove_neurons(fc1: nn.Linear, fc2: nn.Linear, keep: torch.Tensor | Sequence[int]) -> tuple[nn.Linear, nn.Linear]:
    """New, smaller ``(fc1, fc2)``: only hidden neurons ``keep`` remain (rows of fc1, columns of fc2).

    For an activation with f(0) = 0 (ReLU, GELU) the result equals the old pair with the other
    neurons' rows and biases zeroed — but costs proportionally less to run.

    >>> a, b = remove_neurons(nn.Linear(4, 6), nn.Linear(6, 2), keep=[0, 2, 5])
    >>> a.weight.shape, b.weight.shape
    (torch.Size([3, 4]), torch.Size([2, 3]))
    """
    if not isinstance(fc1, nn.Linear) or not isinstance(fc2, nn.Linear):
        raise TypeError(f"fc1 and fc2 must be nn.Linear, got {type(fc1).__name__} and {type(fc2).__name__}")
    if fc2.in_features != fc1.out_features:
        raise ValueError(f"fc1 has {fc1.out_features} outputs but fc2 takes {fc2.in_features} inputs: not a pair")
    if parametrize.is_parametrized(fc1) or parametrize.is_parametrized(fc2):
        raise ValueError("the layers carry pruning masks: call make_permanent(model) first")
    idx = _keep_index(keep, fc1.out_features, "neuron")
    return _sliced_linear(fc1, rows=idx), _sliced_linear(fc2, cols=idx)


def _n_keep(total: int, keep_fraction: float) -> int:
    keep_fraction = _check_fraction(keep_fraction, "keep_fraction", allow_one=True)
    if keep_fraction == 0:
        raise ValueError("keep_fraction must be positive: something has to remain")
    return max(1, int(round(keep_fraction * total)))


def shrink_linear_pair(fc1: nn.Linear, fc2: nn.Linear, keep_fraction: float, use_fc2: bool = False) -> tuple[nn.Linear, nn.Linear]:
    """Keep the ``keep_fraction`` most important hidden neurons of a Linear pair (by :func:`neuron_scores`).

    >>> a, b = shrink_linear_pair(nn.Linear(4, 10), nn.Linear(10, 2), 0.3)
    >>> a.out_features, b.in_features
    (3, 3)
    """
    scores = neuron_scores(fc1, fc2 if use_fc2 else None)
    keep = torch.topk(scores, _n_keep(fc1.out_features, keep_fraction)).indices
    return remove_neurons(fc1, fc2, keep)


def bert_layers(model: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks of a BERT-style model (MiniLM classifier, a student, a ``BertModel``).

    >>> from transformers import BertConfig, BertModel
    >>> len(bert_layers(BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64))))
    2
    """
    for m in model.modules():
        layer = getattr(m, "layer", None)
        if isinstance(layer, nn.ModuleList) and len(layer) and hasattr(layer[0], "attention") and hasattr(layer[0], "intermediate"):
            return layer
    raise TypeError(f"{type(model).__name__} has no BERT encoder (a module with .layer[i].attention/.intermediate)")


def prune_ffn_neurons(model: nn.Module, keep_fraction: float, use_fc2: bool = True) -> nn.Module:
    """Remove the least important feed-forward neurons in every BERT layer (in place); returns the model.

    Each block's ``intermediate.dense`` (H → 4H) loses rows and ``output.dense`` (4H → H) the
    matching columns, so the FFN — about two thirds of a block's weights — really shrinks.

    >>> from transformers import BertConfig, BertModel
    >>> bert = BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
    >>> prune_ffn_neurons(bert, 0.25).encoder.layer[0].intermediate.dense.out_features
    16
    """
    for block in bert_layers(model):
        fc1, fc2 = block.intermediate.dense, block.output.dense
        block.intermediate.dense, block.output.dense = shrink_linear_pair(fc1, fc2, keep_fraction, use_fc2=use_fc2)
    return model


def head_scores(model: nn.Module, p: float = 1.0) -> torch.Tensor:
    """Data-free importance of every attention head, shape (layers, heads).

    A head's score is the Lp norm of its slice of the value projection times that of its slice of
    the output projection: the path through which the head writes into the residual stream.

    >>> from transformers import BertConfig, BertModel
    >>> head_scores(BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64))).shape
    torch.Size([2, 4])
    """
    rows = []
    for block in bert_layers(model):
        att = block.attention.self
        d = att.attention_head_size
        v = att.value.weight.detach().reshape(-1, d, att.value.in_features)
        o = block.attention.output.dense.weight.detach().reshape(block.attention.output.dense.out_features, -1, d)
        rows.append(v.flatten(1).norm(p=p, dim=1) * o.transpose(0, 1).flatten(1).norm(p=p, dim=1))
    n = {r.numel() for r in rows}
    if len(n) != 1:  # layers pruned to different head counts: pad with +inf (never chosen again)
        width = max(n)
        rows = [torch.cat([r, torch.full((width - r.numel(),), float("inf"))]) for r in rows]
    return torch.stack(rows)


def remove_attention_heads(model: nn.Module, heads: dict[int, Sequence[int]]) -> nn.Module:
    """Remove the given heads ({layer index: [head indices]}) from a BERT-style model, in place.

    The query/key/value projections lose the heads' rows and the attention output projection the
    matching columns; at least one head must remain in every layer.

    >>> from transformers import BertConfig, BertModel
    >>> bert = BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64))
    >>> remove_attention_heads(bert, {0: [1, 3]}).encoder.layer[0].attention.self.query.out_features
    16
    """
    layers = bert_layers(model)
    for li, drop in heads.items():
        if not 0 <= li < len(layers):
            raise ValueError(f"layer index {li} out of range: the model has {len(layers)} layers")
        att = layers[li].attention.self
        n_heads, d = att.num_attention_heads, att.attention_head_size
        drop = sorted(set(int(h) for h in drop))
        if any(h < 0 or h >= n_heads for h in drop):
            raise ValueError(f"layer {li} has heads 0..{n_heads - 1}, got {drop}")
        keep_heads = [h for h in range(n_heads) if h not in drop]
        if not keep_heads:
            raise ValueError(f"removing every head of layer {li} would disconnect it: keep at least one")
        if not drop:
            continue
        idx = torch.cat([torch.arange(h * d, (h + 1) * d) for h in keep_heads])
        att.query = _sliced_linear(att.query, rows=idx)
        att.key = _sliced_linear(att.key, rows=idx)
        att.value = _sliced_linear(att.value, rows=idx)
        out = layers[li].attention.output
        out.dense = _sliced_linear(out.dense, cols=idx)
        att.num_attention_heads = len(keep_heads)
        att.all_head_size = len(keep_heads) * d
    return model


def prune_attention_heads(model: nn.Module, keep_fraction: float) -> nn.Module:
    """Keep the ``keep_fraction`` highest-scoring heads in every layer (same count per layer), in place.

    >>> from transformers import BertConfig, BertModel
    >>> bert = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64))
    >>> prune_attention_heads(bert, 0.5).encoder.layer[1].attention.self.num_attention_heads
    2
    """
    scores = head_scores(model)
    plan = {}
    for li, row in enumerate(scores):
        n = int(torch.isfinite(row).sum())
        keep = set(torch.topk(row[:n], _n_keep(n, keep_fraction)).indices.tolist())
        plan[li] = [h for h in range(n) if h not in keep]
    return remove_attention_heads(model, plan)


def remove_conv_channels(conv: nn.Conv2d, bn: nn.BatchNorm2d | None, nxt: nn.Module,
                         keep: torch.Tensor | Sequence[int], spatial: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d | None, nn.Module]:
    """Remove output channels of ``conv`` (and of its BatchNorm) and the matching inputs of the next layer.

    ``nxt`` is a Conv2d (input channels sliced) or a Linear after flattening (C, h, w) features,
    with ``spatial = h * w`` inputs per channel.

    >>> c, b, l = remove_conv_channels(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Linear(16, 2), [0, 3], spatial=4)
    >>> c.out_channels, b.num_features, l.in_features
    (2, 2, 8)
    """
    if not isinstance(conv, nn.Conv2d) or conv.groups != 1:
        raise TypeError("conv must be an ungrouped nn.Conv2d")
    idx = _keep_index(keep, conv.out_channels, "channel")
    new_conv = nn.Conv2d(conv.in_channels, idx.numel(), conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                         bias=conv.bias is not None, padding_mode=conv.padding_mode,
                         device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        new_conv.weight.copy_(conv.weight[idx])
        if conv.bias is not None:
            new_conv.bias.copy_(conv.bias[idx])
    new_bn = None
    if bn is not None:
        new_bn = nn.BatchNorm2d(idx.numel(), eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                                track_running_stats=bn.track_running_stats, device=conv.weight.device)
        with torch.no_grad():
            if bn.affine:
                new_bn.weight.copy_(bn.weight[idx])
                new_bn.bias.copy_(bn.bias[idx])
            if bn.track_running_stats:
                new_bn.running_mean.copy_(bn.running_mean[idx])
                new_bn.running_var.copy_(bn.running_var[idx])
                new_bn.num_batches_tracked.copy_(bn.num_batches_tracked)
        new_bn.train(bn.training)
    if isinstance(nxt, nn.Conv2d):
        if nxt.in_channels != conv.out_channels or nxt.groups != 1:
            raise ValueError(f"the next conv takes {nxt.in_channels} channels, conv gives {conv.out_channels}")
        new_next: nn.Module = nn.Conv2d(idx.numel(), nxt.out_channels, nxt.kernel_size, nxt.stride, nxt.padding,
                                        nxt.dilation, bias=nxt.bias is not None, padding_mode=nxt.padding_mode,
                                        device=nxt.weight.device, dtype=nxt.weight.dtype)
        with torch.no_grad():
            new_next.weight.copy_(nxt.weight[:, idx])
            if nxt.bias is not None:
                new_next.bias.copy_(nxt.bias)
    elif isinstance(nxt, nn.Linear):
        if nxt.in_features != conv.out_channels * spatial:
            raise ValueError(f"the Linear takes {nxt.in_features} inputs, expected {conv.out_channels} channels × "
                             f"{spatial} positions = {conv.out_channels * spatial}: pass spatial=h*w")
        cols = (idx[:, None] * spatial + torch.arange(spatial)).flatten()
        new_next = _sliced_linear(nxt, cols=cols)
    else:
        raise TypeError(f"the next layer must be nn.Conv2d or nn.Linear, got {type(nxt).__name__}")
    new_conv.train(conv.training)
    new_next.train(nxt.training)
    return new_conv, new_bn, new_next


def shrink_small_cnn(model: nn.Module, keep_fraction: float) -> nn.Module:
    """A copy of a :class:`tutorlib.models.SmallCNN` with only the ``keep_fraction`` strongest channels per conv.

    Filters are ranked by the L1 norm of their weights times |BatchNorm scale| (a filter whose BN
    scale is ~0 contributes nothing); the classifier's inputs shrink to match.

    >>> from tutorlib.models import SmallCNN
    >>> small = shrink_small_cnn(SmallCNN(width=8), 0.5)
    >>> small.features[0].out_channels, small.features[3].out_channels
    (4, 8)
    """
    feats = getattr(model, "features", None)
    head = getattr(model, "classifier", None)
    ok = (isinstance(feats, nn.Sequential) and len(feats) >= 6 and isinstance(feats[0], nn.Conv2d)
          and isinstance(feats[1], nn.BatchNorm2d) and isinstance(feats[3], nn.Conv2d)
          and isinstance(feats[4], nn.BatchNorm2d) and isinstance(head, nn.Sequential)
          and isinstance(head[-1], nn.Linear))
    if not ok:
        raise TypeError(f"{type(model).__name__} does not have the SmallCNN layout (features: conv, bn, relu, conv, bn, "
                        "relu, …; classifier ending in a Linear)")
    if is_pruned(model):
        raise ValueError("the model carries pruning masks: call make_permanent(model) first")
    new = copy.deepcopy(model)
    feats, head = new.features, new.classifier

    def ranked(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
        score = conv.weight.detach().abs().flatten(1).sum(1)
        if bn.affine:
            score = score * bn.weight.detach().abs()
        return torch.topk(score, _n_keep(conv.out_channels, keep_fraction)).indices

    feats[0], feats[1], feats[3] = remove_conv_channels(feats[0], feats[1], feats[3], ranked(feats[0], feats[1]))
    spatial = head[-1].in_features // feats[3].out_channels
    feats[3], feats[4], head[-1] = remove_conv_channels(feats[3], feats[4], head[-1], ranked(feats[3], feats[4]), spatial)
    return new
