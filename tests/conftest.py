from pathlib import Path

import pytest
import torch

from tests.fixtures import raw

# Two cores at most in CI: one intra-op thread keeps tests from oversubscribing them.
torch.set_num_threads(1)

SHARED_HAPT = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "HAPT Data Set.zip"


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """No test reads or writes the user's data, cache or config directory."""
    monkeypatch.setenv("HARKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HARKIT_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("HARKIT_CONFIG_DIR", raising=False)


@pytest.fixture(autouse=True)
def pinned_auto(request, monkeypatch):
    """`--precision auto` and `--compile auto` see fixed probe numbers (fp32, no compile) instead of timing
    this machine in every test; tests marked `real_probe` measure (tests/test_hardware.py)."""
    if request.node.get_closest_marker("real_probe"):
        return
    from harkit import hardware

    pinned = hardware.Probe(fp32_gflops=100.0, bf16_gflops=100.0, fp32_step_ms=100.0, bf16_step_ms=100.0)
    monkeypatch.setattr(hardware, "measured_probe", lambda *args, **kwargs: pinned)


@pytest.fixture
def hapt_dir(tmp_path):
    return raw.write_hapt(tmp_path / "hapt")


@pytest.fixture
def tiny_config(hapt_dir):
    """A fast training configuration on the HAPT fixture."""
    from harkit.training.augment import AugmentConfig
    from harkit.training.engine import TrainConfig

    return TrainConfig(
        dataset="hapt",
        model="sann",
        epochs=3,
        batch_size=8,
        augment=AugmentConfig(),  # none, whatever the recipe's default
        model_options={"width": 0.125},
        data_dir=str(hapt_dir),
        window=32,
        overlap=0.5,
        val_fraction=0.5,
        patience=None,
        threads=1,
    )
