from harkit.datasets import PrepareConfig, prepare
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
