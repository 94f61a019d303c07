"""Finding archives, extracting them atomically, and downloading from a local HTTP server."""

import hashlib
import http.server
import threading
from dataclasses import replace
from functools import partial

import pytest

from harkit import HarkitError
from harkit.datasets import PrepareConfig, get_dataset, locate, prepare
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
    root, _ = locate(dataset, tmp_path / "downloads", tmp_path / "cache")
    assert (root / "RawData" / "labels.txt").is_file()
    assert (tmp_path / "downloads" / dataset.source.filename).is_file()

    bad = with_source("hapt", f"{url}/hapt.zip", "0" * 64)
    with pytest.raises(HarkitError, match="checksum mismatch"):
        locate(bad, tmp_path / "other", tmp_path / "cache2")
    assert not any((tmp_path / "other").iterdir())  # nothing half-written stays


def test_download_without_published_checksum_records_the_first(hapt_zip, server, tmp_path):
    folder, url = server
    (folder / "hapt.zip").write_bytes(hapt_zip.read_bytes())
    dataset = with_source("hapt", f"{url}/hapt.zip", None)
    locate(dataset, tmp_path / "downloads", tmp_path / "cache")
    recorded = (tmp_path / "downloads" / "harkit-checksums.json").read_text()
    assert hashlib.sha256(hapt_zip.read_bytes()).hexdigest() in recorded


def test_offline_message_names_the_file_and_the_place(server, tmp_path):
    _, url = server
    dataset = with_source("hapt", f"{url}/missing.zip", None)
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
