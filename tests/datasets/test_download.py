"""Finding archives, extracting them atomically, and downloading from a local HTTP server."""

import hashlib
import http.server
import logging
import threading
from dataclasses import replace
from functools import partial

import pytest

from harkit import HarkitError
from harkit.datasets import PrepareConfig, get_dataset, locate, prepare
from harkit.datasets.download import _host
from tests.fixtures import raw


@pytest.fixture
def hapt_zip(tmp_path):
    tree = raw.write_hapt(tmp_path / "tree")
    data = tmp_path / "data"
    data.mkdir()
    return raw.zip_tree(tree, data / "HAPT Data Set.zip")


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over a folder; yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def with_source(dataset, url, sha256):
    dataset = get_dataset(dataset)  # the class attribute is replaced on this instance only
    dataset.source = replace(dataset.source, url=url, sha256=sha256)
    return dataset


def test_archive_in_data_dir_is_extracted_into_cache(hapt_zip, tmp_path):
    root, fingerprint = locate(get_dataset("hapt"), hapt_zip.parent, tmp_path / "cache")
    assert (root / "RawData" / "labels.txt").is_file()
    assert root.is_relative_to(tmp_path / "cache")
    assert fingerprint == "sha256:" + hashlib.sha256(hapt_zip.read_bytes()).hexdigest()
    assert not [p for p in (tmp_path / "cache" / "extracted").iterdir() if p.name.startswith(".")]


def test_corrupt_archive_is_an_error_naming_the_file(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "HAPT Data Set.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(HarkitError, match=r"HAPT Data Set\.zip is not a readable archive"):
        locate(get_dataset("hapt"), data, tmp_path / "cache")
    leftovers = list((tmp_path / "cache" / "extracted").iterdir())
    assert leftovers == []


def test_truncated_archive_leaves_nothing_behind(hapt_zip, tmp_path):
    hapt_zip.write_bytes(hapt_zip.read_bytes()[: hapt_zip.stat().st_size // 2])
    with pytest.raises(HarkitError, match="not a readable archive"):
        locate(get_dataset("hapt"), hapt_zip.parent, tmp_path / "cache")
    assert list((tmp_path / "cache" / "extracted").iterdir()) == []


def test_download_checks_the_checksum(hapt_zip, server, tmp_path):
    folder, url = server
    (folder / "hapt.zip").write_bytes(hapt_zip.read_bytes())
    good = hashlib.sha256(hapt_zip.read_bytes()).hexdigest()
    dataset = with_source("hapt", f"{url}/hapt.zip", good)
    (tmp_path / "downloads").mkdir()  # a folder the user names must exist: harkit never creates it
    root, _ = locate(dataset, tmp_path / "downloads", tmp_path / "cache")
    assert (root / "RawData" / "labels.txt").is_file()
    assert (tmp_path / "downloads" / dataset.source.filename).is_file()

    bad = with_source("hapt", f"{url}/hapt.zip", "0" * 64)
    (tmp_path / "other").mkdir()
    with pytest.raises(HarkitError, match="checksum mismatch"):
        locate(bad, tmp_path / "other", tmp_path / "cache2")
    assert not any((tmp_path / "other").iterdir())  # nothing half-written stays


def test_download_without_published_checksum_records_the_first(hapt_zip, server, tmp_path):
    folder, url = server
    (folder / "hapt.zip").write_bytes(hapt_zip.read_bytes())
    dataset = with_source("hapt", f"{url}/hapt.zip", None)
    (tmp_path / "downloads").mkdir()
    locate(dataset, tmp_path / "downloads", tmp_path / "cache")
    recorded = (tmp_path / "cache" / "archives.json").read_text()  # in the cache, never beside the data
    assert hashlib.sha256(hapt_zip.read_bytes()).hexdigest() in recorded


def test_offline_message_names_the_file_and_the_place(server, tmp_path):
    _, url = server
    dataset = with_source("hapt", f"{url}/missing.zip", None)
    (tmp_path / "downloads").mkdir()
    with pytest.raises(HarkitError, match=r"could not download .*place it .* in .*downloads"):
        locate(dataset, tmp_path / "downloads", tmp_path / "cache")
    with pytest.raises(HarkitError, match="not found in"):
        locate(get_dataset("hapt"), tmp_path / "downloads", tmp_path / "cache", allow_download=False)


def test_wrong_archive_is_rejected(tmp_path):
    tree = raw.write_dsads(tmp_path / "tree")
    data = tmp_path / "data"
    data.mkdir()
    raw.zip_tree(tree, data / "HAPT Data Set.zip")
    with pytest.raises(HarkitError, match="is not the Smartphone-Based"):
        locate(get_dataset("hapt"), data, tmp_path / "cache")


def test_tar_gz_archive_of_wisdm(tmp_path):
    import tarfile

    tree, _ = raw.write_wisdm(tmp_path / "tree")
    data = tmp_path / "data"
    data.mkdir()
    with tarfile.open(data / "WISDM_ar_latest.tar.gz", "w:gz") as handle:
        handle.add(tree / "WISDM_ar_v1.1", arcname="WISDM_ar_v1.1")
    prepared = prepare("wisdm", PrepareConfig(window=20), data_dir=data)
    assert prepared.meta["subjects"]["test"] == [31]


def test_archive_nested_in_an_archive_is_unpacked(tmp_path):
    """The current UCI download of PAMAP2 is a zip holding PAMAP2_Dataset.zip."""
    tree = raw.write_pamap2(tmp_path / "tree")
    inner = raw.zip_tree(tree, tmp_path / "PAMAP2_Dataset.zip")
    data = tmp_path / "data"
    data.mkdir()
    import zipfile

    with zipfile.ZipFile(data / "pamap2+physical+activity+monitoring.zip", "w") as outer:
        outer.write(inner, "PAMAP2_Dataset.zip")
        outer.writestr("readme.pdf", b"%PDF")
    root, _ = locate(get_dataset("pamap2"), data, tmp_path / "cache")
    assert (root / "Protocol" / "subject101.dat").is_file()


def test_a_full_disk_while_extracting_is_not_called_a_corrupt_archive(hapt_zip, tmp_path, monkeypatch):
    import errno
    import zipfile

    def full(self, path=None, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(zipfile.ZipFile, "extractall", full)
    with pytest.raises(HarkitError) as caught:
        locate(get_dataset("hapt"), hapt_zip.parent, tmp_path / "cache")
    message = str(caught.value)
    assert "disk is full" in message and str(tmp_path / "cache") in message
    assert "corrupt" not in message and "Delete it" not in message
    assert [p for p in (tmp_path / "cache" / "extracted").iterdir()] == []


def test_leftover_extraction_is_cleaned_and_folders_get_normal_permissions(hapt_zip, tmp_path):
    import os
    import stat

    extracted = tmp_path / "cache" / "extracted"
    dead = extracted / f".hapt-0123456789abcdef-{_host()}-99999999-deadbeef"
    (dead / "RawData").mkdir(parents=True)
    (dead / "RawData" / "acc.txt").write_bytes(b"1 2 3\n" * 1000)
    locate(get_dataset("hapt"), hapt_zip.parent, tmp_path / "cache")
    assert not dead.exists()
    umask = os.umask(0)
    os.umask(umask)
    top = next(p for p in extracted.iterdir())
    assert stat.S_IMODE(top.stat().st_mode) == 0o777 & ~umask


def test_a_local_archive_unlike_the_published_one_is_named_in_a_warning(hapt_zip, tmp_path, monkeypatch, caplog):
    dataset = get_dataset("hapt")
    dataset.archive_sha256 = {"HAPT Data Set.zip": "0" * 64}
    caplog.set_level(logging.WARNING)
    root, _ = locate(dataset, hapt_zip.parent, tmp_path / "cache")
    assert (root / "RawData" / "labels.txt").is_file()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "HAPT Data Set.zip" in m and "not the published" in m and "results may not be comparable" in m for m in warnings
    ), warnings
    monkeypatch.setenv("HARKIT_STRICT_CHECKSUMS", "1")
    with pytest.raises(HarkitError, match=r"HAPT Data Set\.zip.*not the published.*HARKIT_STRICT_CHECKSUMS"):
        locate(dataset, hapt_zip.parent, tmp_path / "cache")


def test_an_archive_that_changed_since_first_use_is_named_in_a_warning(hapt_zip, tmp_path, caplog):
    dataset = with_source("hapt", "https://example.org/hapt.zip", None)
    dataset.archive_sha256 = {}  # nothing published: the first copy used is the reference
    caplog.set_level(logging.WARNING)
    locate(dataset, hapt_zip.parent, tmp_path / "cache")
    assert not caplog.records
    assert hashlib.sha256(hapt_zip.read_bytes()).hexdigest() in (tmp_path / "cache" / "archives.json").read_text()
    tree = raw.write_hapt(tmp_path / "tree2")
    (tree / "HAPT Data Set" / "README.txt").write_text("another copy")
    raw.zip_tree(tree, hapt_zip)
    locate(dataset, hapt_zip.parent, tmp_path / "cache")
    assert any(
        "HAPT Data Set.zip differs from the copy recorded at its first use" in r.getMessage() for r in caplog.records
    )


def test_the_real_archives_have_known_published_checksums():
    assert get_dataset("hapt").archive_sha256["HAPT Data Set.zip"].startswith("4ac4ae06")
    assert get_dataset("uci-har").archive_sha256["UCI HAR Dataset.zip"].startswith("2045e435")
