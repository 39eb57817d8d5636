"""A small text classifier trained from scratch on the reviews: the case where text regularisation matters.

The pretrained MiniLM barely overfits 1,120 reviews; a convolutional text classifier learned from
scratch (Kim, 2014) memorises them in a few epochs, which makes it the right patient for dropout
and text augmentation. It reads the MiniLM tokenizer's word-piece ids (``text_collate`` batches),
so no vocabulary has to be built.

>>> import torch
>>> m = TextCNN(vocab_size=100)
>>> m(torch.randint(1, 100, (2, 12)), torch.ones(2, 12, dtype=torch.long)).shape
torch.Size([2, 2])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["TextCNN"]


class TextCNN(nn.Module):
    """Token embeddings → parallel 1-D convolutions (widths ``kernel_sizes``) → max over time → dropout → linear.

    ``forward(input_ids, attention_mask)``: padding positions are excluded from the max. Pass
    ``embeddings`` (vocab_size, dim) to start from pretrained word vectors (e.g. MiniLM's input
    embeddings), frozen unless ``freeze_embeddings=False``; the padding row is set to zero so that a
    padded batch gives the same predictions as unpadded texts.

    >>> TextCNN(50, embed_dim=8, num_filters=4, kernel_sizes=(2,))(torch.ones(1, 5, dtype=torch.long)).shape
    torch.Size([1, 2])
    """

    def __init__(self, vocab_size: int, embed_dim: int = 64, num_filters: int = 64,
                 kernel_sizes: Sequence[int] = (2, 3, 4), num_classes: int = 2, dropout: float = 0.0,
                 pad_id: int = 0, embeddings: torch.Tensor | None = None, freeze_embeddings: bool = True) -> None:
        super().__init__()
        if vocab_size < 2 or embed_dim < 1 or num_filters < 1 or not kernel_sizes:
            raise ValueError("vocab_size >= 2, embed_dim >= 1, num_filters >= 1 and at least one kernel size are needed")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if embeddings is not None:
            if embeddings.dim() != 2 or embeddings.shape[0] != vocab_size:
                raise ValueError(f"embeddings must have shape (vocab_size={vocab_size}, dim), got {tuple(embeddings.shape)}")
            embed_dim = embeddings.shape[1]
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        if embeddings is not None:
            with torch.no_grad():
                self.embed.weight.copy_(embeddings)
                self.embed.weight[pad_id].zero_()  # padding must look like the convolution's own zero padding
            self.embed.weight.requires_grad_(not freeze_embeddings)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, num_filters, k, padding=k - 1) for k in kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(num_filters * len(kernel_sizes), num_classes)
        self.vocab_size = vocab_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        if input_ids.dim() != 2:
            raise ValueError(f"expected input_ids of shape (B, T), got {tuple(input_ids.shape)}")
        if int(input_ids.max()) >= self.vocab_size:
            raise ValueError(f"token id {int(input_ids.max())} >= vocab_size {self.vocab_size}: build the model with "
                             "vocab_size=tokenizer.vocab_size")
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        h = self.embed(input_ids).transpose(1, 2)  # (B, E, T)
        pooled = []
        for conv in self.convs:
            c = torch.relu(conv(h))  # (B, F, T + k - 1)
            k = conv.kernel_size[0]
            # an output position is real if any token of its window is real
            padded = nn.functional.pad(mask[:, None].float(), (k - 1, k - 1))
            m = nn.functional.max_pool1d(padded, k, stride=1)  # (B, 1, T + k - 1)
            c = c.masked_fill(m == 0, float("-inf"))
            pooled.append(c.max(dim=2).values)
        return self.head(self.dropout(torch.cat(pooled, dim=1)))
