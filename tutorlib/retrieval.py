"""Nearest neighbours by cosine similarity: the one retrieval helper of the course.

CLIP's image ↔ text search (lesson 07), the dialogue memory (lesson 12) and retrieval-augmented
generation all rank stored embeddings by their cosine similarity to a query.

>>> import torch
>>> keys = torch.tensor([[0.0, 1.0], [2.0, 0.1], [1.0, 1.0]])
>>> cosine_top_k(torch.tensor([1.0, 0.0]), keys, 2).indices
tensor([1, 2])
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["cosine_similarity_matrix", "cosine_top_k"]


def cosine_similarity_matrix(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every query row (Q, D) with every key row (N, D): a (Q, N) float32 matrix.

    >>> cosine_similarity_matrix(torch.eye(2), torch.tensor([[3.0, 0.0], [1.0, 1.0]]))
    tensor([[1.0000, 0.7071],
            [0.0000, 0.7071]])
    """
    if queries.dim() != 2 or keys.dim() != 2 or queries.shape[1] != keys.shape[1]:
        raise ValueError(f"expected queries (Q, D) and keys (N, D) with the same D, got {tuple(queries.shape)} "
                         f"and {tuple(keys.shape)}")
    return F.normalize(queries.float(), dim=-1) @ F.normalize(keys.float(), dim=-1).t()


def cosine_top_k(query: torch.Tensor, keys: torch.Tensor, k: int) -> torch.return_types.topk:
    """The ``k`` rows of ``keys`` (N, D) most cosine-similar to ``query`` (D,) or to each row of (Q, D).

    Returns ``(values, indices)``, best first (``k`` is capped at N); for a batch of queries both are (Q, k).

    >>> values, indices = cosine_top_k(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.eye(2), 1)
    >>> indices.tolist()
    [[0], [1]]
    """
    if query.dim() not in (1, 2) or keys.dim() != 2 or keys.shape[1] != query.shape[-1]:
        raise ValueError(f"expected query (D,) or (Q, D) and keys (N, D), got {tuple(query.shape)} and {tuple(keys.shape)}")
    if int(k) < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    sims = cosine_similarity_matrix(query.reshape(-1, query.shape[-1]), keys)
    top = torch.topk(sims, min(int(k), keys.shape[0]), dim=1)
    return top if query.dim() == 2 else torch.return_types.topk((top.values[0], top.indices[0]))
