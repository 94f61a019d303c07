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


PHONE = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z", "quat_w", "quat_x", "quat_y", "quat_z"]


def phone_augmenter(devices):
    from harkit.datasets import sensor_groups
    from harkit.training.augment import rotation_devices

    sensors = sensor_groups(PHONE)  # quat_x, quat_y, quat_z look like a 3-axis sensor by name alone
    assert (7, 8, 9) in sensors
    mean = torch.tensor([0.1, -0.2, 9.8, 0.0, 0.1, -0.1, 0.5, 0.1, 0.2, 0.3])
    std = torch.tensor([2.0, 1.0, 0.5, 1.5, 3.0, 1.0, 0.2, 0.3, 0.4, 0.5])
    grouped = rotation_devices(PHONE, sensors, devices)
    generator = torch.Generator().manual_seed(0)
    return Augmenter(AugmentConfig(rotation=180), sensors, mean, std, generator, grouped), mean, std


def fitted_rotations(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Per sample, the matrix R with after = before @ R^T (least squares over the window's time steps)."""
    return torch.linalg.lstsq(before, after).solution.transpose(1, 2)


def test_one_rotation_per_device_and_non_vector_channels_untouched():
    transform, mean, std = phone_augmenter({"phone": PHONE[:6]})
    x = torch.randn(8, 40, 10, dtype=torch.float64).float()
    raw_x, raw_y = x * std + mean, transform(x) * std + mean
    acc = fitted_rotations(raw_x[:, :, 0:3], raw_y[:, :, 0:3])
    gyro = fitted_rotations(raw_x[:, :, 3:6], raw_y[:, :, 3:6])
    assert torch.allclose(acc, gyro, atol=1e-3)  # the accelerometer and gyroscope turn together
    assert torch.allclose(acc @ acc.transpose(1, 2), torch.eye(3).expand(8, 3, 3), atol=1e-3)
    assert not torch.allclose(acc, torch.eye(3).expand(8, 3, 3), atol=1e-2)
    assert torch.allclose(raw_x[:, :, 6:], raw_y[:, :, 6:], atol=1e-5)  # quaternion channels are not rotated
    # Without devices every 3-axis group turns on its own (the quaternion's x, y, z too): this test would see it.
    alone, mean, std = phone_augmenter(None)
    raw_y = alone(x) * std + mean
    acc = fitted_rotations(raw_x[:, :, 0:3], raw_y[:, :, 0:3])
    gyro = fitted_rotations(raw_x[:, :, 3:6], raw_y[:, :, 3:6])
    assert not torch.allclose(acc, gyro, atol=1e-2)
    assert not torch.allclose(raw_x[:, :, 7:], raw_y[:, :, 7:], atol=1e-2)


def test_rotation_devices_group_the_sensors_of_each_device():
    from harkit.training.augment import rotation_devices

    sensors = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (9, 10, 11)]
    channels = [f"{s}_{a}" for s in ("hand_acc", "hand_gyro", "chest_acc", "shoe_eu") for a in "xyz"]
    devices = {"hand": channels[:6], "chest": channels[6:9], "absent": ["other_x"]}
    assert rotation_devices(channels, sensors, devices) == [[(0, 1, 2), (3, 4, 5)], [(6, 7, 8)]]
    assert rotation_devices(channels, sensors, None) == [[g] for g in sensors]


def test_dataset_facts_keep_non_vectors_out_of_rotation():
    from harkit.datasets import get_dataset

    opportunity = get_dataset("opportunity")
    rotated = {opportunity.channels[i] for group in opportunity.sensors for i in group}
    assert "imu_L-SHOE_Body_A_x" in rotated and "imu_R-SHOE_AngVelBodyFrame_z" in rotated
    assert not any(("Eu_" in name or "Nav" in name) for name in rotated)  # Euler angles, earth frame
    assert "imu_BACK_gyro_x" in opportunity.devices["imu_BACK"] and "imu_BACK_acc_x" in opportunity.devices["imu_BACK"]
    hapt = get_dataset("hapt")
    assert rotation_devices_of(hapt) == [[(0, 1, 2), (3, 4, 5)]]  # one phone: acc and gyro turn together


def rotation_devices_of(dataset):
    from harkit.training.augment import rotation_devices

    return rotation_devices(dataset.channels, dataset.sensors, dataset.devices)


def test_prepared_windows_carry_the_devices(hapt_dir):
    from harkit.datasets import PrepareConfig, prepare

    meta = prepare("hapt", PrepareConfig(window=32, channels=("acc_x", "acc_y", "acc_z")), data_dir=hapt_dir).meta
    assert meta["devices"] == {"phone": ["acc_x", "acc_y", "acc_z"]}
