import errno
import logging
import os
import stat
from pathlib import Path

import pytest

from harkit import HarkitError
from harkit.datasets import PrepareConfig, prepare
from harkit.datasets.download import _host
from harkit.datasets.pipeline import cache_key


def test_prepared_arrays_are_cached_and_reused(hapt_dir, tmp_path, monkeypatch):
    config = PrepareConfig(window=64, val_fraction=0.0)
    first = prepare("hapt", config, data_dir=hapt_dir)
    folder = tmp_path / "cache" / "prepared"
    assert len(list(folder.iterdir())) == 1

    calls = []
    from harkit.datasets import hapt

    monkeypatch.setattr(hapt.HAPT, "read", lambda self, root: calls.append(root))
    again = prepare("hapt", config, data_dir=hapt_dir)
    assert calls == []  # served from the cache, the raw files were not read
    assert (again.train.x == first.train.x).all()
    assert again.meta == first.meta


def test_a_changed_option_never_returns_stale_arrays(hapt_dir, tmp_path):
    a = prepare("hapt", PrepareConfig(window=64, val_fraction=0.0), data_dir=hapt_dir)
    b = prepare("hapt", PrepareConfig(window=32, val_fraction=0.0), data_dir=hapt_dir)
    c = prepare("hapt", PrepareConfig(window=64, val_fraction=0.0, normalize=False), data_dir=hapt_dir)
    d = prepare("hapt", PrepareConfig(window=64, val_fraction=0.0), data_dir=hapt_dir, transitions=True)
    assert a.train.x.shape[1] == 64 and b.train.x.shape[1] == 32
    assert not (a.train.x == c.train.x).all()
    assert len(d.meta["classes"]) == 12
    assert len(list((tmp_path / "cache" / "prepared").iterdir())) == 4


def test_cache_key_changes_with_source_and_version(monkeypatch):
    import harkit.datasets.pipeline as module
    from harkit.datasets import get_dataset

    dataset = get_dataset("hapt")
    key = cache_key(dataset, PrepareConfig(), "sha256:aa")
    assert key != cache_key(dataset, PrepareConfig(), "sha256:bb")
    monkeypatch.setattr(module, "PREPROCESS_VERSION", 999)
    assert key != cache_key(dataset, PrepareConfig(), "sha256:aa")


def test_a_folder_dataset_is_cached_under_the_cache_dir_never_beside_the_data(tmp_path):
    from harkit.datasets.folder import write_template

    data = tmp_path / "mine" / "walks"
    write_template(data)
    before = sorted(p.name for p in (tmp_path / "mine").iterdir())
    prepared = prepare(str(data), PrepareConfig(val_fraction=0.0))
    assert Path(prepared.meta["cache"]).is_relative_to(tmp_path / "cache" / "prepared")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == before
    assert not [p for p in data.rglob("*") if p.suffix == ".npy"]


@pytest.mark.parametrize("damage", ["truncate", "delete", "garble"])
def test_a_damaged_cache_entry_is_rebuilt_with_a_warning(hapt_dir, tmp_path, caplog, damage):
    config = PrepareConfig(window=64, val_fraction=0.0)
    first = prepare("hapt", config, data_dir=hapt_dir)
    entry = Path(first.meta["cache"])
    target = entry / "x_train.npy"
    content = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(content[: len(content) // 2])
    elif damage == "delete":
        target.unlink()
    else:
        target.write_bytes(b"\x00" * len(content))  # same size, header destroyed
    caplog.set_level(logging.WARNING)
    again = prepare("hapt", config, data_dir=hapt_dir)
    assert (again.train.x == first.train.x).all()
    assert any("are damaged" in r.getMessage() and "rebuilt" in r.getMessage() for r in caplog.records)
    assert (entry / "x_train.npy").read_bytes() == content
    assert (entry / "manifest.json").is_file()


def test_a_full_disk_while_caching_says_so_with_the_path(hapt_dir, tmp_path, monkeypatch):
    import harkit.datasets.pipeline as pipeline

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pipeline.np, "save", full)
    with pytest.raises(HarkitError, match=r"disk is full.*cache"):
        prepare("hapt", PrepareConfig(window=64, val_fraction=0.0), data_dir=hapt_dir)
    assert not [p for p in (tmp_path / "cache" / "prepared").iterdir()]


def test_leftovers_of_a_killed_preparation_are_removed_and_folders_are_readable(hapt_dir, tmp_path):
    prepared_dir = tmp_path / "cache" / "prepared"
    dead = prepared_dir / f".hapt-0123-{_host()}-99999999-deadbeef"  # a process of this host that has ended
    elsewhere = prepared_dir / ".hapt-0123-otherhost-99999999-deadbeef"  # another machine's: may be running
    dead.mkdir(parents=True)
    (dead / "x_train.npy").write_bytes(b"\x00" * 1000)
    elsewhere.mkdir()
    prepared = prepare("hapt", PrepareConfig(window=64, val_fraction=0.0), data_dir=hapt_dir)
    assert not dead.exists()
    assert elsewhere.exists()  # removed only once a day old
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(Path(prepared.meta["cache"]).stat().st_mode) == 0o777 & ~umask
