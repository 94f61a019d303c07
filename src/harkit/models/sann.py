"""The Spatial Attention Neural Network (SANN) and the plain CNN of the same shape.

Input windows `[batch, time, channels]` are treated as one-plane images `[batch, 1, time, channels]`.
Every convolution runs along time only (kernels `(3, 1)`), so each sensor channel keeps its own column.
"""

from __future__ import annotations

import torch
from torch import nn

from harkit.models.base import HarModel
from harkit.models.registry import register_model

WIDTHS = (64, 128, 256, 512)


class SpatialAttentionModule(nn.Module):
    """Attention over time: the mean over feature maps, a `(3, 1)` convolution and a sigmoid scale `x`.

    The weights of the last forward pass are kept in `attention` when `keep_attention` is set.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, kernel_size=(3, 1), stride=(1, 1), padding=(1, 0))
        self.keep_attention = False
        self.attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        att = torch.mean(x, dim=1, keepdim=True)
        att = torch.sigmoid(self.conv(att))
        if self.keep_attention:
            self.attention = att.detach()
        return x * att


class ConvStage(nn.Sequential):
    """`Conv2d((3, 1), stride (2, 1), padding (1, 0))` -> [SpatialAttentionModule] -> BatchNorm2d -> ReLU."""

    def __init__(self, cin: int, cout: int, attention: bool) -> None:
        layers = [nn.Conv2d(cin, cout, kernel_size=(3, 1), stride=(2, 1), padding=(1, 0))]
        if attention:
            layers.append(SpatialAttentionModule())
        layers += [nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        super().__init__(*layers)


def scaled_widths(width: float) -> tuple[int, ...]:
    """The stage widths 64-128-256-512 times `width` (1.0 is the published network)."""
    return tuple(max(1, round(w * width)) for w in WIDTHS)


def conv_stages(widths: tuple[int, ...], attention: bool) -> nn.Sequential:
    """The feature stages shared by SANN, the CNN and the hybrids."""
    cins = (1, *widths[:-1])
    return nn.Sequential(*(ConvStage(cin, cout, attention) for cin, cout in zip(cins, widths, strict=True)))


class SpatialAttentionNeuralNetwork(HarModel):
    """SANN: four attention stages, `AdaptiveAvgPool2d((1, channels))`, flatten, `Linear(512 * channels)`.

    With `attention=False` it is the traditional CNN it is compared with.
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        widths: tuple[int, ...] = WIDTHS,
        attention: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.stages = conv_stages(tuple(widths), attention)
        self.pool = nn.AdaptiveAvgPool2d((1, channels))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(widths[-1] * channels, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(x.unsqueeze(1))
        return self.dropout(torch.flatten(self.pool(x), 1))

    def attention_modules(self) -> list[SpatialAttentionModule]:
        """The attention module of each stage, first to last."""
        return [m for m in self.modules() if isinstance(m, SpatialAttentionModule)]


@register_model("sann")
def sann(window: int, channels: int, num_classes: int, width: float = 1.0, dropout: float = 0.0) -> HarModel:
    """SANN exactly as published (width 1.0): 546,838 parameters for 9 channels and 6 classes."""
    return SpatialAttentionNeuralNetwork(channels, num_classes, scaled_widths(width), attention=True, dropout=dropout)


@register_model("cnn")
def cnn(window: int, channels: int, num_classes: int, width: float = 1.0, dropout: float = 0.0) -> HarModel:
    """The traditional CNN: SANN's stages without spatial attention."""
    return SpatialAttentionNeuralNetwork(channels, num_classes, scaled_widths(width), attention=False, dropout=dropout)
