from pathlib import Path

import pytest
import torch

from tests.fixtures import raw

# Two cores at most in CI: one intra-op thread keeps tests from oversubscribing them.
torch.set_num_threads(1)

SHARED_HAPT = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "HAPT Data Set.zip"


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """No test reads or writes the user's data or cache directory."""
    monkeypatch.setenv("HARKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HARKIT_DATA_DIR", str(tmp_path / "no-data"))


@pytest.fixture
def hapt_dir(tmp_path):
    return raw.write_hapt(tmp_path / "hapt")


@pytest.fixture
def tiny_config(hapt_dir):
    """A fast training configuration on the HAPT fixture."""
    from harkit.training.engine import TrainConfig

    return TrainConfig(
        dataset="hapt",
        model="sann",
        epochs=3,
        batch_size=8,
        model_options={"width": 0.125},
        data_dir=str(hapt_dir),
        window=32,
        overlap=0.5,
        val_fraction=0.5,
        patience=None,
        threads=1,
    )
