"""Self-describing checkpoints: a checkpoint alone rebuilds and evaluates its model."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from harkit import HarkitError
from harkit.models import create_model


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write atomically, so an interruption never leaves a truncated checkpoint."""
    staging = path.with_suffix(".tmp")
    torch.save(payload, staging)
    os.replace(staging, path)


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by `save_checkpoint`."""
    if not Path(path).is_file():
        raise HarkitError(f"no checkpoint at {path}; train a model there first (harkit train ... --out DIR)")
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as error:
        raise HarkitError(f"{path} is not a readable checkpoint ({error}); train again with --overwrite") from None


def model_from_checkpoint(checkpoint: dict, device: str | torch.device = "cpu") -> nn.Module:
    """The model described by a checkpoint, with its weights, in eval mode."""
    spec = checkpoint["model"]
    model = create_model(spec["name"], spec["window"], spec["channels"], spec["num_classes"], **spec["options"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device).eval()
