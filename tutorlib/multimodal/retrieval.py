"""Text → image and image → text retrieval measured with recall@k, in both directions.

Recall@k is the fraction of queries with at least one correct item among the k most similar.
Procedural captions repeat (two images can both be "a small red circle at the top"), so a hit is
any item whose caption equals the query's, not only the item it was paired with.

>>> import torch
>>> from tutorlib.multimodal.retrieval import recall_at_k
>>> recall_at_k(torch.tensor([[0.9, 0.1], [0.8, 0.2]]), k=1)
0.5
"""

from __future__ import annotations

from typing import Sequence

import torch

from tutorlib.retrieval import cosine_similarity_matrix

__all__ = ["caption_positives", "recall_at_k", "chance_recall_at_k", "retrieval_report"]


def caption_positives(query_captions: Sequence[str], gallery_captions: Sequence[str]) -> torch.Tensor:
    """Boolean (Nq, Ng) matrix: True where the two captions are the same text.

    >>> caption_positives(["a", "b"], ["a", "a", "b"]).int()
    tensor([[1, 1, 0],
            [0, 0, 1]], dtype=torch.int32)
    """
    ids: dict[str, int] = {}
    q = torch.tensor([ids.setdefault(c, len(ids)) for c in query_captions])
    g = torch.tensor([ids.setdefault(c, len(ids)) for c in gallery_captions])
    return q[:, None] == g[None, :]


def _positives(similarity: torch.Tensor, positives: torch.Tensor | None) -> torch.Tensor:
    if positives is None:
        if similarity.shape[0] != similarity.shape[1]:
            raise ValueError(f"without positives= the similarity must be square (query i matches item i), got "
                             f"{tuple(similarity.shape)}")
        return torch.eye(similarity.shape[0], dtype=torch.bool)
    positives = torch.as_tensor(positives).bool().cpu()
    if positives.shape != similarity.shape:
        raise ValueError(f"positives {tuple(positives.shape)} must have the shape of the similarity {tuple(similarity.shape)}")
    if not positives.any(dim=1).all():
        bad = int((~positives.any(dim=1)).nonzero()[0])
        raise ValueError(f"query {bad} has no correct item in the gallery: every row of positives needs a True")
    return positives


def recall_at_k(similarity: torch.Tensor, k: int, positives: torch.Tensor | None = None) -> float:
    """Fraction of queries (rows) with a correct item (True in ``positives``, default the diagonal) in their top k.

    For text → image retrieval pass ``similarity.T`` (and ``positives.T``).

    >>> s = torch.tensor([[0.1, 0.9, 0.0], [0.2, 0.5, 0.3], [0.0, 0.1, 0.9]])
    >>> round(recall_at_k(s, 1), 3), recall_at_k(s, 2)
    (0.667, 1.0)
    """
    if not isinstance(similarity, torch.Tensor) or similarity.dim() != 2:
        raise ValueError(f"expected a (queries, gallery) similarity matrix, got {getattr(similarity, 'shape', type(similarity))}")
    if not 1 <= k <= similarity.shape[1]:
        raise ValueError(f"k must be between 1 and the gallery size {similarity.shape[1]}, got {k}")
    pos = _positives(similarity, positives)
    top = similarity.detach().float().cpu().topk(k, dim=1).indices
    return pos.gather(1, top).any(dim=1).float().mean().item()


def chance_recall_at_k(positives: torch.Tensor, k: int) -> float:
    """Expected recall@k of a random ranking: 1 − C(N−p, k)/C(N, k) averaged over queries with p positives.

    >>> round(chance_recall_at_k(torch.eye(10, dtype=torch.bool), 5), 3)
    0.5
    """
    positives = torch.as_tensor(positives).bool()
    n = positives.shape[1]
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the gallery size {n}, got {k}")
    p = positives.sum(dim=1).double()
    # C(n-p, k) / C(n, k) = prod_{i<k} (n-p-i)/(n-i)
    miss = torch.ones_like(p)
    for i in range(k):
        miss = miss * ((n - p - i).clamp(min=0) / (n - i))
    return float((1 - miss).mean())


def retrieval_report(image_emb: torch.Tensor, text_emb: torch.Tensor, captions: Sequence[str] | None = None,
                     ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Recall@k for image → text and text → image over N paired embeddings, with chance levels.

    With ``captions``, items with identical captions count as correct; without, only the pair itself.

    >>> e = torch.randn(6, 8)
    >>> retrieval_report(e, e, ks=(1,))["image_to_text_R@1"]
    1.0
    """
    if image_emb.shape != text_emb.shape:
        raise ValueError(f"expected paired embeddings of the same shape, got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}")
    if captions is not None and len(captions) != image_emb.shape[0]:
        raise ValueError(f"got {len(captions)} captions for {image_emb.shape[0]} pairs")
    sim = cosine_similarity_matrix(image_emb, text_emb)
    pos = caption_positives(captions, captions) if captions is not None else torch.eye(len(sim), dtype=torch.bool)
    out: dict[str, float] = {}
    for k in ks:
        out[f"image_to_text_R@{k}"] = recall_at_k(sim, k, pos)
        out[f"text_to_image_R@{k}"] = recall_at_k(sim.t(), k, pos.t())
        out[f"chance_R@{k}"] = chance_recall_at_k(pos, k)
    return out
