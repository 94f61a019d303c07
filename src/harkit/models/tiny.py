"""`tiny`: TinyHAR (Zhou et al., ISWC 2022), a HAR network for microcontroller-sized budgets.

The published design, part by part, as in the authors' code (teco-kit/ISWC22-HAR, `TinyHAR_Model`):

1. per-channel convolutions: four `(5, 1)` convolutions along time, each followed by ReLU and BatchNorm,
   the 2nd and 4th with stride 2 (time / 4), shared by every sensor channel;
2. cross-channel interaction: a transformer encoder layer whose tokens are the sensor channels, at each
   time step;
3. cross-channel fusion: one fully connected layer from all channels' features to `2 * filters`;
4. global temporal information: one LSTM layer;
5. temporal aggregation: attention weights over the time steps, added (scaled by a learnt gamma that
   starts at 0) to the last step.

What harkit changes: 24 filters (the paper sweeps the filter number), so that a HAPT window (128 x 6) costs 4.6 M
multiply-adds for 42 k parameters, under the 5 M and 100 k of issue 15 (16 filters, 2.1 M and 19 k, scored 0.939 ±
0.022 macro F1 on HAPT over three seeds, 24 filters 0.944 ± 0.014, with validation held out); the interaction block
is PyTorch's own `nn.TransformerEncoderLayer` (2 heads, feed-forward `2 * filters`, post-norm) rather than a
hand-written one, so that it exports to ONNX as is; dropout 0.1 on the fused features and the LSTM output.
"""

from __future__ import annotations

import torch
from torch import nn

from harkit.models.base import HarModel
from harkit.models.registry import register_model


class TemporalAggregation(nn.Module):
    """TinyHAR's `temporal_weighted_aggregation`: `last step + gamma * attention-weighted sum over time`."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False))
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.score(x), dim=1)  # [batch, time, 1]
        return x[:, -1] + self.gamma * (weights * x).sum(1)


class TinyHAR(HarModel):
    """TinyHAR for windows `[batch, time, channels]`.

    Args:
        channels: sensor channels.
        num_classes: output classes.
        filters: convolution filters per channel; the fused and LSTM width is twice this.
        heads: attention heads of the cross-channel transformer layer (must divide `filters`).
        dropout: dropout in the transformer layer, after fusion and after the LSTM.
    """

    def __init__(self, channels: int, num_classes: int, filters: int = 24, heads: int = 2, dropout: float = 0.1):
        super().__init__()
        layers, cin = [], 1
        for index in range(4):
            stride = (2, 1) if index % 2 == 1 else (1, 1)
            layers += [
                nn.Conv2d(cin, filters, kernel_size=(5, 1), stride=stride, padding=(2, 0)),
                nn.ReLU(inplace=True),
                nn.BatchNorm2d(filters),
            ]
            cin = filters
        # Channels-last weights make oneDNN run the `(5, 1)` convolutions in its channels-last layout, 2x as fast
        # as the default one on 24 filters x 6 columns (fwd + bwd, 1 thread), and what the tokens below read.
        self.convs = nn.Sequential(*layers).to(memory_format=torch.channels_last)
        self.interaction = nn.TransformerEncoderLayer(
            filters, heads, dim_feedforward=2 * filters, dropout=dropout, batch_first=True
        )
        self.fusion = nn.Sequential(nn.Linear(channels * filters, 2 * filters), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(2 * filters, 2 * filters, batch_first=True)
        self.aggregate = TemporalAggregation(2 * filters)
        self.head = nn.Linear(2 * filters, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x.unsqueeze(1))  # [batch, filters, time / 4, channels]
        batch, filters, steps, channels = x.shape
        tokens = x.permute(0, 2, 3, 1).reshape(batch * steps, channels, filters)  # channels are the tokens
        tokens = self.interaction(tokens)
        fused = self.dropout(self.fusion(tokens.reshape(batch, steps, channels * filters)))
        out, _ = self.lstm(fused)
        return self.aggregate(self.dropout(out))


@register_model("tiny")
def tiny(
    window: int, channels: int, num_classes: int, filters: int = 24, heads: int = 2, dropout: float = 0.1
) -> HarModel:
    """TinyHAR (ISWC 2022) with 24 filters: under 100 k parameters and 5 M multiply-adds per HAPT window."""
    return TinyHAR(channels, num_classes, filters=filters, heads=heads, dropout=dropout)
