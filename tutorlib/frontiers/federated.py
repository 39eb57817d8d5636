"""Federated averaging (McMahan et al., 2017) across simulated clients, with IID or label-skewed splits.

Each round every client starts from the global weights, trains locally on its own data (through
:class:`tutorlib.train.Trainer`), and the server replaces the global weights by the average of the
clients' weights, weighted by how many examples each client holds. When clients see different labels
(non-IID data) their local models drift apart and FedAvg converges more slowly.

>>> import torch
>>> a = {"w": torch.tensor([1.0, 1.0])}; b = {"w": torch.tensor([3.0, 5.0])}
>>> fedavg([a, b], [1, 3])["w"].tolist()
[2.5, 4.0]
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

__all__ = ["fedavg", "iid_split", "label_skew_split", "federated_train", "FedHistory"]


def fedavg(states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """Weighted average of client ``state_dict`` s (weights = client dataset sizes; equal if ``None``).

    Integer buffers (e.g. BatchNorm's ``num_batches_tracked``) are taken from the first client.

    >>> fedavg([{"w": torch.zeros(2)}, {"w": torch.ones(2)}])["w"].tolist()
    [0.5, 0.5]
    """
    if not states:
        raise ValueError("need at least one client state_dict")
    keys = set(states[0])
    for i, s in enumerate(states):
        if set(s) != keys:
            raise ValueError(f"client {i} has different parameter names: {sorted(set(s) ^ keys)[:5]}")
    w = torch.ones(len(states), dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
    if w.shape != (len(states),) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {len(states)} non-negative numbers with a positive sum, got {weights}")
    w = w / w.sum()
    out = {}
    for k in states[0]:
        t0 = states[0][k]
        if not t0.is_floating_point():
            out[k] = t0.clone()
            continue
        acc = torch.zeros_like(t0, dtype=torch.float64)
        for wi, s in zip(w, states):
            acc += wi * s[k].double()
        out[k] = acc.to(t0.dtype)
    return out


def iid_split(n: int, n_clients: int, seed: int = 0) -> list[np.ndarray]:
    """Shuffle ``range(n)`` and deal it into ``n_clients`` nearly equal parts.

    >>> [len(p) for p in iid_split(10, 3)]
    [4, 3, 3]
    """
    if n_clients < 1 or n < n_clients:
        raise ValueError(f"need 1 <= n_clients <= n, got n_clients={n_clients}, n={n}")
    return [np.sort(p) for p in np.array_split(np.random.default_rng(seed).permutation(n), n_clients)]


def label_skew_split(labels: Sequence[int], n_clients: int, classes_per_client: int = 2, seed: int = 0) -> list[np.ndarray]:
    """Non-IID split: each client gets examples of only ``classes_per_client`` classes (the "pathological" split of
    McMahan et al.). Client ``c`` gets classes ``c·k … c·k+k-1`` (mod the number of classes), so every class lands on some client; each class's
    examples are shared equally among the clients that hold it.

    >>> parts = label_skew_split([0, 0, 1, 1, 2, 2, 3, 3], n_clients=2, classes_per_client=2)
    >>> [sorted(set(np.asarray([0, 0, 1, 1, 2, 2, 3, 3])[p].tolist())) for p in parts]
    [[0, 1], [2, 3]]
    """
    y = np.asarray(labels)
    classes = np.unique(y)
    if n_clients < 1 or not 1 <= classes_per_client <= len(classes):
        raise ValueError(f"need n_clients >= 1 and 1 <= classes_per_client <= {len(classes)}, got {n_clients}, {classes_per_client}")
    if n_clients * classes_per_client < len(classes):
        raise ValueError(f"{n_clients} clients × {classes_per_client} classes cannot cover {len(classes)} classes")
    rng = np.random.default_rng(seed)
    slots = [classes[(c * classes_per_client + j) % len(classes)] for c in range(n_clients) for j in range(classes_per_client)]
    owners: dict[int, list[int]] = {}
    for i, cls in enumerate(slots):
        owners.setdefault(int(cls), []).append(i // classes_per_client)
    parts: list[list[int]] = [[] for _ in range(n_clients)]
    for cls, who in owners.items():
        idx = rng.permutation(np.flatnonzero(y == cls))
        for chunk, c in zip(np.array_split(idx, len(who)), who):
            parts[c].extend(chunk.tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


class FedHistory(dict):
    """``round`` → global test accuracy lists: keys ``round``, ``accuracy``."""


def federated_train(make_model: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor, parts: Sequence[np.ndarray],
                    x_test: torch.Tensor, y_test: torch.Tensor, rounds: int = 10, local_epochs: int = 1,
                    lr: float = 0.05, batch_size: int = 32, seed: int = 0) -> tuple[nn.Module, FedHistory]:
    """Run FedAvg: ``rounds`` × (each client trains ``local_epochs`` with SGD from the global weights; average).

    Returns the global model and its test accuracy after every round.

    >>> from tutorlib.models import MLP
    >>> x = torch.randn(60, 4); y = (x[:, 0] > 0).long()
    >>> m, h = federated_train(lambda: MLP(4, [8], 2), x, y, iid_split(60, 3), x, y, rounds=2)
    >>> len(h["accuracy"])
    2
    """
    from tutorlib.train import Trainer

    if rounds < 1 or local_epochs < 1:
        raise ValueError(f"rounds and local_epochs must be >= 1, got {rounds}, {local_epochs}")
    if not parts or any(len(p) == 0 for p in parts):
        raise ValueError("every client needs at least one example: check the split")
    torch.manual_seed(seed)
    global_model = make_model()
    hist = FedHistory(round=[], accuracy=[])
    for r in range(rounds):
        states, sizes = [], []
        for c, idx in enumerate(parts):
            local = copy.deepcopy(global_model)
            idx_t = torch.as_tensor(idx)
            opt = torch.optim.SGD(local.parameters(), lr=lr)
            Trainer(local, opt, batch_size=batch_size, seed=seed + 1000 * r + c, progress=False, log=False,
                    metrics=()).fit(TensorDataset(x[idx_t], y[idx_t]), epochs=local_epochs)
            states.append({k: v.detach().cpu() for k, v in local.state_dict().items()})
            sizes.append(len(idx))
        global_model.load_state_dict(fedavg(states, sizes))
        global_model.eval()
        with torch.no_grad():
            acc = float((global_model(x_test).argmax(-1) == y_test).float().mean())
        global_model.train()
        hist["round"].append(r + 1)
        hist["accuracy"].append(acc)
    return global_model, hist
