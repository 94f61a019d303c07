"""SANN stages followed by a sequence model over time: a Transformer encoder or an LSTM.

The attention stages keep a column per sensor channel, computed with weights shared across columns;
each remaining time step becomes one token of all columns' features (`widths[-1] x channels`, as SANN's
own head flattens them), so the sequence model still knows which channel, e.g. which gravity axis, a
feature came from.
"""

from __future__ import annotations

import torch
from torch import nn

from harkit.models.base import HarModel
from harkit.models.registry import register_model
from harkit.models.sann import WIDTHS, SpatialAttentionModule, conv_stages, scaled_widths
from harkit.models.transformer import PositionalEncoding, encoder


class SANNSequence(HarModel):
    """SANN stages -> one token per time step -> Transformer encoder or LSTM over time -> head."""

    def __init__(
        self,
        channels: int,
        num_classes: int,
        sequence: str,
        widths: tuple[int, ...] = WIDTHS,
        dim: int = 128,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.stages = conv_stages(tuple(widths), attention=True)
        self.project = nn.Linear(widths[-1] * channels, dim)
        self.sequence_kind = sequence
        if sequence == "transformer":
            self.position = PositionalEncoding(dim)
            self.sequence = encoder(dim, heads, layers, dropout)
        else:
            self.sequence = nn.LSTM(dim, dim, num_layers=layers, batch_first=True, dropout=dropout)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(x.unsqueeze(1))  # [batch, width, time', channels]
        x = self.project(x.permute(0, 2, 1, 3).flatten(2))  # [batch, time', width x channels] -> dim
        if self.sequence_kind == "transformer":
            return self.norm(self.sequence(self.position(x)).mean(dim=1))
        out, _ = self.sequence(x)
        return self.norm(out[:, -1])

    def attention_modules(self) -> list[SpatialAttentionModule]:
        """The attention module of each SANN stage, first to last."""
        return [m for m in self.modules() if isinstance(m, SpatialAttentionModule)]


@register_model("sann-transformer")
def sann_transformer(
    window: int,
    channels: int,
    num_classes: int,
    width: float = 1.0,
    dim: int = 128,
    heads: int = 4,
    layers: int = 2,
    dropout: float = 0.1,
) -> HarModel:
    """SANN stages, then a two-layer Transformer encoder over the remaining time steps."""
    return SANNSequence(channels, num_classes, "transformer", scaled_widths(width), dim, heads, layers, dropout)


@register_model("sann-lstm")
def sann_lstm(
    window: int,
    channels: int,
    num_classes: int,
    width: float = 1.0,
    dim: int = 128,
    layers: int = 2,
    dropout: float = 0.1,
) -> HarModel:
    """SANN stages, then a two-layer LSTM over the remaining time steps."""
    return SANNSequence(channels, num_classes, "lstm", scaled_widths(width), dim, layers=layers, dropout=dropout)
