"""Small vision models used across lessons: an MLP and a small CNN for 8×8 digits (or any small image).

>>> import torch
>>> from tutorlib.models import MLP, SmallCNN
>>> MLP(64, [32], 10)(torch.zeros(2, 64)).shape
torch.Size([2, 10])
>>> SmallCNN()(torch.zeros(2, 1, 8, 8)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["MLP", "SmallCNN"]


class MLP(nn.Module):
    """Fully connected net: ``in_features → hidden[0] → … → out_features`` with ReLU and optional dropout.

    Accepts (B, in_features) or images (B, C, H, W) with C·H·W == in_features (flattened for you).

    >>> MLP(64, [16, 16], 10, dropout=0.1)(torch.zeros(3, 1, 8, 8)).shape
    torch.Size([3, 10])
    """

    def __init__(self, in_features: int = 64, hidden: Sequence[int] = (128,), out_features: int = 10,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if in_features <= 0 or out_features <= 0 or any(h <= 0 for h in hidden):
            raise ValueError(f"layer sizes must be positive, got in={in_features}, hidden={list(hidden)}, out={out_features}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_features = in_features
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() > 2:
            x = x.flatten(1)
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"expected a batch of shape (B, {self.in_features}) or images with {self.in_features} "
                f"values each, got {tuple(x.shape)}"
            )
        return self.net(x)


class SmallCNN(nn.Module):
    """Two conv blocks + a linear classifier; sized for 8×8 digits but works on any H, W ≥ 4.

    >>> SmallCNN(in_channels=3, num_classes=4)(torch.zeros(1, 3, 32, 32)).shape
    torch.Size([1, 4])
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32, dropout: float = 0.0) -> None:
        super().__init__()
        if in_channels <= 0 or num_classes <= 0 or width <= 0:
            raise ValueError("in_channels, num_classes and width must be positive")
        self.in_channels = in_channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(2 * width * 4, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected images of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
                + (": add a channel dimension with x.unsqueeze(1)" if x.dim() == 3 else "")
            )
        return self.classifier(self.features(x))
