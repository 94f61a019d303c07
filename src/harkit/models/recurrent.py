"""Recurrent models: a stacked LSTM and DeepConvLSTM (convolutions along time, then LSTMs)."""

from __future__ import annotations

import torch
from torch import nn

from harkit import HarkitError
from harkit.models.base import HarModel
from harkit.models.registry import register_model


class LSTMClassifier(HarModel):
    """A stacked LSTM over time steps; the last step's output feeds the head."""

    def __init__(self, channels: int, num_classes: int, hidden: int = 128, layers: int = 2, dropout: float = 0.0):
        super().__init__()
        self.lstm = nn.LSTM(
            channels, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
        )
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(hidden, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.dropout(out[:, -1])


class DeepConvLSTM(HarModel):
    """Ordóñez and Roggen (2016): four `(5, 1)` convolutions along time, two LSTM layers, the last step."""

    def __init__(
        self,
        window: int,
        channels: int,
        num_classes: int,
        filters: int = 64,
        kernel: int = 5,
        hidden: int = 128,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if window - 4 * (kernel - 1) < 1:
            raise HarkitError(
                f"deepconvlstm needs windows of at least {4 * (kernel - 1) + 1} samples (four valid "
                f"convolutions of {kernel}); got {window}"
            )
        convs = []
        for cin in (1, filters, filters, filters):
            convs += [nn.Conv2d(cin, filters, kernel_size=(kernel, 1)), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*convs)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lstm = nn.LSTM(filters * channels, hidden, num_layers=2, batch_first=True, dropout=dropout)
        self.head = nn.Linear(hidden, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x.unsqueeze(1))  # [batch, filters, time', channels]
        x = x.permute(0, 2, 1, 3).flatten(2)  # [batch, time', filters * channels]
        out, _ = self.lstm(self.dropout(x))
        return self.dropout(out[:, -1])


@register_model("lstm")
def lstm(
    window: int, channels: int, num_classes: int, hidden: int = 128, layers: int = 2, dropout: float = 0.0
) -> HarModel:
    """Two LSTM layers of 128 units."""
    return LSTMClassifier(channels, num_classes, hidden, layers, dropout)


@register_model("deepconvlstm")
def deepconvlstm(
    window: int, channels: int, num_classes: int, filters: int = 64, hidden: int = 128, dropout: float = 0.5
) -> HarModel:
    """DeepConvLSTM with 64 filters and 128 LSTM units."""
    return DeepConvLSTM(window, channels, num_classes, filters=filters, hidden=hidden, dropout=dropout)
