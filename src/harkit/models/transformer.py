"""A Transformer encoder over time steps, with sinusoidal positional encoding."""

from __future__ import annotations

import math

import torch
from torch import nn

from harkit.models.base import HarModel
from harkit.models.registry import register_model


class PositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal encoding of Vaswani et al. to `[batch, time, dim]`."""

    def __init__(self, dim: int, max_len: int = 4096) -> None:
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        frequency = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        table = torch.zeros(max_len, dim)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
        self.register_buffer("table", table, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table[: x.shape[1]]


def encoder(dim: int, heads: int, layers: int, dropout: float) -> nn.TransformerEncoder:
    """Pre-norm encoder layers (more stable to train from scratch than post-norm)."""
    layer = nn.TransformerEncoderLayer(
        dim, heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class TransformerClassifier(HarModel):
    """Linear embedding of each time step, positional encoding, encoder, mean over time, head."""

    def __init__(
        self, channels: int, num_classes: int, dim: int = 64, heads: int = 4, layers: int = 2, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(channels, dim)
        self.position = PositionalEncoding(dim)
        self.encoder = encoder(dim, heads, layers, dropout)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encoder(self.position(self.embed(x)))
        return self.norm(x.mean(dim=1))


@register_model("transformer")
def transformer(
    window: int, channels: int, num_classes: int, dim: int = 64, heads: int = 4, layers: int = 2, dropout: float = 0.1
) -> HarModel:
    """Two encoder layers of width 64 with 4 heads."""
    return TransformerClassifier(channels, num_classes, dim, heads, layers, dropout)
