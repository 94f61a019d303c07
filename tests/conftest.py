from pathlib import Path

import pytest

from tests.fixtures import raw

SHARED_HAPT = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "HAPT Data Set.zip"


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """No test reads or writes the user's data or cache directory."""
    monkeypatch.setenv("HARKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HARKIT_DATA_DIR", str(tmp_path / "no-data"))


@pytest.fixture
def hapt_dir(tmp_path):
    return raw.write_hapt(tmp_path / "hapt")
