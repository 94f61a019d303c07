"""Augmentation of sensor windows, applied to a whole batch on its device.

Each transform keeps the window shape and never touches labels. Rotation acts on 3-axis sensors in
physical units: the batch is de-normalised, rotated and normalised again, so a rotation is a real rotation.
One rotation turns a whole device: the accelerometer and the gyroscope of one phone share its axes, so
they turn together. Channels that are not vectors in a device's frame (Euler angles, quaternions,
earth-frame signals) belong to no device and are never rotated.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from harkit import HarkitError


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each transform; 0 turns it off.

    Attributes:
        shift: largest circular time shift, as a fraction of the window.
        crop: fraction of the window cut away by a random crop that is stretched back to full length.
        rotation: largest rotation angle in degrees about a random axis, per sample and device.
        flip: probability of flipping the sign of each sensor axis.
        jitter: standard deviation of added Gaussian noise (in normalised units).
        scale: standard deviation of a per-sample, per-channel scale factor around 1.
        time_warp: standard deviation of the random speed change of a smooth time warp.
    """

    shift: float = 0.0
    crop: float = 0.0
    rotation: float = 0.0
    flip: float = 0.0
    jitter: float = 0.0
    scale: float = 0.0
    time_warp: float = 0.0

    @classmethod
    def parse(cls, text: str | None) -> AugmentConfig:
        """From `rotation=30,jitter=0.05`; `none` is no augmentation."""
        if not text or text.strip().lower() in ("none", "off"):
            return cls()
        values = {}
        for item in text.split(","):
            key, _, value = item.partition("=")
            key = key.strip().replace("-", "_")
            if key not in cls.__dataclass_fields__:
                raise HarkitError(f"unknown augmentation {key!r}; use {', '.join(cls.__dataclass_fields__)}")
            try:
                values[key] = float(value)
            except ValueError:
                raise HarkitError(f"augmentation {item!r} needs a number, e.g. {key}=0.1") from None
        return cls(**values)

    def scaled(self, factor: float) -> AugmentConfig:
        """Every strength multiplied by `factor` (probabilities capped at 1)."""
        values = {k: v * factor for k, v in asdict(self).items()}
        values["flip"] = min(1.0, values["flip"])
        return AugmentConfig(**values)

    @property
    def enabled(self) -> bool:
        return any(v > 0 for v in asdict(self).values())


def random_rotations(n: int, max_degrees: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """`[n, 3, 3]` rotations about uniformly random axes by angles uniform in [-max, max] (Rodrigues)."""
    axis = torch.randn(n, 3, generator=generator, device=device)
    axis = axis / axis.norm(dim=1, keepdim=True).clamp_min(1e-12)
    angle = (torch.rand(n, generator=generator, device=device) * 2 - 1) * math.radians(max_degrees)
    zero = torch.zeros(n, device=device)
    cross = torch.stack(
        [
            torch.stack([zero, -axis[:, 2], axis[:, 1]], 1),
            torch.stack([axis[:, 2], zero, -axis[:, 0]], 1),
            torch.stack([-axis[:, 1], axis[:, 0], zero], 1),
        ],
        1,
    )
    eye = torch.eye(3, device=device).expand(n, 3, 3)
    sin, cos = angle.sin()[:, None, None], angle.cos()[:, None, None]
    return eye + sin * cross + (1 - cos) * (cross @ cross)


def rotation_devices(
    channels: list[str], sensors: list[tuple[int, int, int]], devices: dict[str, list[str]] | None
) -> list[list[tuple[int, int, int]]]:
    """The 3-axis sensors that one rotation turns together, device by device.

    Args:
        channels: channel names of the windows.
        sensors: channel indices of each 3-axis sensor.
        devices: device name -> the channels measured in that device's frame. Empty or None: each sensor
            is its own device. Otherwise a sensor turns with the device that holds its three channels, and
            a sensor no device holds (Euler angles, earth-frame signals) is not rotated.
    """
    if not devices:
        return [[tuple(group)] for group in sensors]
    position = {name: index for index, name in enumerate(channels)}
    grouped = []
    for names in devices.values():
        members = {position[name] for name in names if name in position}
        groups = [tuple(group) for group in sensors if set(group) <= members]
        if groups:
            grouped.append(groups)
    return grouped


def _resample_time(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of `x [batch, time, channels]` at fractional `positions [batch, time]`."""
    time = x.shape[1]
    positions = positions.clamp(0, time - 1)
    low = positions.floor().long().clamp(max=time - 2) if time > 1 else positions.floor().long()
    high = (low + 1).clamp(max=time - 1)
    weight = (positions - low).unsqueeze(2)
    index = low.unsqueeze(2).expand(-1, -1, x.shape[2])
    upper = high.unsqueeze(2).expand(-1, -1, x.shape[2])
    return torch.gather(x, 1, index) * (1 - weight) + torch.gather(x, 1, upper) * weight


class Augmenter:
    """Applies the enabled transforms of an `AugmentConfig` to batches."""

    def __init__(
        self,
        config: AugmentConfig,
        sensor_groups: list[tuple[int, int, int]],
        mean: torch.Tensor,
        std: torch.Tensor,
        generator: torch.Generator,
        devices: list[list[tuple[int, int, int]]] | None = None,
    ) -> None:
        """`devices` (from `rotation_devices`) groups the sensors one rotation turns; None: each sensor alone."""
        self.config, self.generator = config, generator
        self.devices = devices if devices is not None else [[tuple(g)] for g in sensor_groups]
        self.groups = [group for groups in self.devices for group in groups]  # flips act on these too
        self.mean, self.std = mean, std
        if config.rotation > 0 and not any(self.devices):
            raise HarkitError(
                "rotation needs 3-axis sensors in a device frame, and no channels here form one (names ending x, y, "
                "z, listed in the dataset's devices)"
            )

    def _rand(self, *shape: int, device: torch.device) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator, device=device)

    def _randn(self, *shape: int, device: torch.device) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator, device=device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """An augmented copy of `x [batch, time, channels]`."""
        c, (batch, time, channels), device = self.config, x.shape, x.device
        if c.rotation > 0 or c.flip > 0:
            raw = x * self.std + self.mean
            if c.rotation > 0:
                for groups in self.devices:
                    rotation = random_rotations(batch, c.rotation, self.generator, device).transpose(1, 2)
                    for group in groups:  # the same rotation for every sensor of the device
                        raw[:, :, list(group)] = raw[:, :, list(group)] @ rotation
            if c.flip > 0:
                for group in self.groups:
                    signs = torch.where(self._rand(batch, 1, 3, device=device) < c.flip, -1.0, 1.0)
                    raw[:, :, list(group)] = raw[:, :, list(group)] * signs
            x = (raw - self.mean) / self.std
        if c.shift > 0:
            largest = max(1, round(c.shift * time))
            shifts = torch.randint(-largest, largest + 1, (batch, 1), generator=self.generator, device=device)
            index = (torch.arange(time, device=device)[None, :] - shifts) % time
            x = torch.gather(x, 1, index.unsqueeze(2).expand(-1, -1, channels))
        if c.crop > 0:
            kept = (1 - c.crop) * (time - 1)
            start = self._rand(batch, 1, device=device) * (time - 1 - kept)
            positions = start + torch.linspace(0, 1, time, device=device)[None, :] * kept
            x = _resample_time(x, positions)
        if c.time_warp > 0:
            knots = (1 + c.time_warp * self._randn(batch, 4, device=device)).clamp_min(0.1)
            speed = torch.nn.functional.interpolate(
                knots.unsqueeze(1), size=time, mode="linear", align_corners=True
            ).squeeze(1)
            path = torch.cumsum(speed, dim=1)
            path = (path - path[:, :1]) / (path[:, -1:] - path[:, :1]).clamp_min(1e-6) * (time - 1)
            x = _resample_time(x, path)
        if c.scale > 0:
            x = x * (1 + c.scale * self._randn(batch, 1, channels, device=device))
        if c.jitter > 0:
            x = x + c.jitter * self._randn(batch, time, channels, device=device)
        return x
