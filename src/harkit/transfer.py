"""Cross-dataset transfer: start a model from another run's weights, matching input channels by name."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from harkit import HarkitError
from harkit.runs import Run

log = logging.getLogger(__name__)


def _map_channels(
    source: torch.Tensor, target: torch.Tensor, source_channels: list[str], target_channels: list[str]
) -> torch.Tensor | None:
    """Copy a tensor whose last axis runs over (groups x) input channels, channel by channel name.

    Channels the source lacks start at zero. None when the shapes do not differ that way.
    """
    if source.dim() == 0 or source.shape[:-1] != target.shape[:-1]:
        return None
    s_last, t_last = source.shape[-1], target.shape[-1]
    if s_last % len(source_channels) or t_last % len(target_channels):
        return None
    groups = s_last // len(source_channels)
    if groups != t_last // len(target_channels):
        return None
    src = source.reshape(*source.shape[:-1], groups, len(source_channels))
    out = torch.zeros(*target.shape[:-1], groups, len(target_channels), dtype=target.dtype)
    for index, name in enumerate(target_channels):
        if name in source_channels:
            out[..., index] = src[..., source_channels.index(name)]
    return out.reshape(target.shape)


def load_pretrained(model: nn.Module, run: Path | str, channels: list[str], model_name: str) -> dict:
    """Load the feature weights of `run` into `model`; the head keeps its fresh initialisation.

    Returns counts of tensors copied as they are, copied channel by channel, and left as initialised.
    """
    checkpoint = Run(run).checkpoint("best")  # loaded without unpickling code
    if checkpoint["model"]["name"] != model_name:
        raise HarkitError(f"{run} holds a {checkpoint['model']['name']} model; --init-from needs a {model_name} run")
    source_channels = checkpoint["channels"]
    shared = set(source_channels) & set(channels)
    if not shared and source_channels != channels:
        log.warning("no channel names shared between %s and this dataset; input weights start at zero", run)
    target = model.state_dict()
    counts = {"copied": 0, "mapped": 0, "initialised": 0}
    for key, value in target.items():
        source = checkpoint["state_dict"].get(key)
        if key.startswith("head.") or source is None:
            counts["initialised"] += 1
        elif source.shape == value.shape and source_channels == channels:
            target[key] = source
            counts["copied"] += 1
        elif source.shape == value.shape and (source.dim() == 0 or source.shape[-1] != len(source_channels)):
            target[key] = source  # a tensor that does not run over input channels
            counts["copied"] += 1
        else:
            mapped = _map_channels(source, value, source_channels, channels)
            if mapped is None:
                counts["initialised"] += 1
            else:
                target[key] = mapped
                counts["mapped"] += 1
    model.load_state_dict(target)
    log.info("initialised from %s: %s", run, counts)
    return counts


def freeze_features(model: nn.Module) -> None:
    """Stop gradients to everything but the head."""
    for module in model.feature_modules():
        for parameter in module.parameters():
            parameter.requires_grad_(False)
