"""What every harkit model shares: input `[batch, time, channels]`, logits out, a replaceable head."""

from __future__ import annotations

import torch
from torch import nn


class HarModel(nn.Module):
    """Base class: `forward` = `forward_head(forward_features(x))`; the head is the attribute `head`."""

    head: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits `[batch, num_classes]` for windows `[batch, time, channels]`."""
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the last linear layer by a freshly initialised one with `num_classes` outputs."""
        linear = self.head if isinstance(self.head, nn.Linear) else self.head[-1]
        new = nn.Linear(linear.in_features, num_classes)
        if isinstance(self.head, nn.Linear):
            self.head = new
        else:
            self.head[-1] = new

    def feature_modules(self) -> list[nn.Module]:
        """Everything but the head (frozen when fine-tuning with frozen features)."""
        return [m for name, m in self.named_children() if name != "head"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
