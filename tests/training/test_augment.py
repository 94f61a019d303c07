import math

import pytest
import torch

from harkit import HarkitError
from harkit.training.augment import AugmentConfig, Augmenter, random_rotations

GROUPS = [(0, 1, 2), (3, 4, 5)]


def augmenter(**strengths):
    mean, std = torch.tensor([0.5, -1.0, 9.8, 0, 0, 0.1]), torch.tensor([2.0, 1.0, 0.5, 1, 3, 1])
    return Augmenter(AugmentConfig(**strengths), GROUPS, mean, std, torch.Generator().manual_seed(0)), mean, std


@pytest.mark.parametrize(
    "strengths",
    [
        {"shift": 0.2},
        {"crop": 0.2},
        {"rotation": 180},
        {"flip": 0.5},
        {"jitter": 0.1},
        {"scale": 0.1},
        {"time_warp": 0.2},
        {"shift": 0.1, "rotation": 30, "jitter": 0.05, "scale": 0.1, "time_warp": 0.1, "crop": 0.1},
    ],
)
def test_every_transform_keeps_shape_and_changes_values(strengths):
    transform, _, _ = augmenter(**strengths)
    x = torch.randn(16, 50, 6)
    y = transform(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert not torch.allclose(x, y)


def test_rotation_is_a_rotation_of_each_sensor_in_physical_units():
    transform, mean, std = augmenter(rotation=180)
    x = torch.randn(8, 40, 6)
    y = transform(x)
    raw_x, raw_y = x * std + mean, y * std + mean
    for group in GROUPS:
        assert torch.allclose(raw_x[:, :, group].norm(dim=2), raw_y[:, :, group].norm(dim=2), atol=1e-4)
    rotations = random_rotations(100, 45, torch.Generator().manual_seed(1), torch.device("cpu"))
    assert torch.allclose(rotations @ rotations.transpose(1, 2), torch.eye(3).expand(100, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(rotations), torch.ones(100), atol=1e-5)
    angles = torch.acos(((rotations.diagonal(dim1=1, dim2=2).sum(1) - 1) / 2).clamp(-1, 1))
    assert angles.max() <= math.radians(45) + 1e-4


def test_shift_is_a_circular_roll_and_flip_changes_signs():
    transform, _, _ = augmenter(shift=0.5)
    x = torch.arange(20.0).reshape(1, 20, 1).repeat(4, 1, 6)
    y = transform(x)
    for row in y[:, :, 0]:
        shift = int(row[0].item())
        assert torch.equal(row, torch.roll(torch.arange(20.0), -shift))
    flip, mean, std = augmenter(flip=1.0)
    raw = flip(torch.randn(2, 10, 6)) * std + mean
    assert raw.shape == (2, 10, 6)


def test_parse_and_errors():
    assert AugmentConfig.parse("rotation=30, jitter=0.05") == AugmentConfig(rotation=30, jitter=0.05)
    assert not AugmentConfig.parse(None).enabled
    with pytest.raises(HarkitError, match="unknown augmentation"):
        AugmentConfig.parse("mixup=1")
    with pytest.raises(HarkitError, match="3-axis sensors"):
        Augmenter(AugmentConfig(rotation=10), [], torch.zeros(2), torch.ones(2), torch.Generator())
