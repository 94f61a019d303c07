"""Finding a dataset's raw files: an extracted tree or an archive in the data directory, else a
checked download. Archives are extracted atomically into the cache directory, so a read-only data
directory works and an interrupted extraction leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pooch

from harkit import HarkitError
from harkit.datasets.base import Dataset

log = logging.getLogger(__name__)
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")


def default_data_dir() -> Path:
    """`HARKIT_DATA_DIR`, else the user cache directory."""
    return Path(os.environ.get("HARKIT_DATA_DIR") or pooch.os_cache("harkit") / "data")


def default_cache_dir() -> Path:
    """`HARKIT_CACHE_DIR`, else the user cache directory."""
    return Path(os.environ.get("HARKIT_CACHE_DIR") or pooch.os_cache("harkit") / "cache")


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def archive_checksum(path: Path, cache_dir: Path) -> str:
    """SHA-256 of an archive, remembered per (path, size, modification time) so it is computed once."""
    memo_path = cache_dir / "checksums.json"
    memo = json.loads(memo_path.read_text()) if memo_path.is_file() else {}
    stat = path.stat()
    key, stamp = str(path.resolve()), [stat.st_size, stat.st_mtime_ns]
    if key in memo and memo[key][:2] == stamp:
        return memo[key][2]
    checksum = sha256_of(path)
    memo[key] = [*stamp, checksum]
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = memo_path.with_suffix(f".{os.getpid()}.tmp")
    staging.write_text(json.dumps(memo, indent=1))
    os.replace(staging, memo_path)
    return checksum


def tree_fingerprint(root: Path) -> str:
    """A cheap identity for an extracted tree: relative path, size and modification time of every file."""
    entries = sorted(
        f"{p.relative_to(root)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in root.rglob("*") if p.is_file()
    )
    return "tree:" + hashlib.sha256("\n".join(entries).encode()).hexdigest()


def _find_marker(base: Path, marker: str, depth: int = 2) -> Path | None:
    """The folder under `base` (up to `depth` levels down) that holds `marker`."""
    level = [base]
    for _ in range(depth + 1):
        for folder in level:
            if (folder / marker).is_file():
                return folder
        level = [
            child
            for folder in level
            if folder.is_dir()
            for child in sorted(folder.iterdir())
            if child.is_dir() and not child.name.startswith(".")
        ]
    return None


def _candidate_archives(dataset: Dataset, data_dir: Path) -> list[Path]:
    names = {dataset.source.filename, *dataset.archive_names}
    found = []
    for folder in (data_dir, data_dir / dataset.key):
        for name in sorted(names):
            if (folder / name).is_file():
                found.append(folder / name)
    return found


def _open_error(dataset: Dataset, archive: Path, reason: str) -> HarkitError:
    return HarkitError(
        f"{archive} is not a readable archive ({reason}); it is corrupt or incompletely downloaded. "
        f"Delete it and place a fresh copy of {dataset.source.filename} from {dataset.source.url} there."
    )


def publish(staging: Path, destination: Path) -> None:
    """Move a finished folder into place atomically; if another process got there first, keep theirs."""
    try:
        os.replace(staging, destination)
    except OSError:
        if not destination.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)


def extract(dataset: Dataset, archive: Path, destination: Path) -> None:
    """Extract `archive` (and archives nested in it) into `destination`, atomically."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        _extract_into(dataset, archive, staging)
        if _find_marker(staging, dataset.marker, depth=3) is None:
            # Some owners publish a zip holding the dataset's own zip (PAMAP2 on the current UCI site).
            for inner in [p for p in staging.rglob("*") if p.is_file() and p.name.endswith(ARCHIVE_SUFFIXES)]:
                _extract_into(dataset, inner, inner.parent)
                inner.unlink()
        if _find_marker(staging, dataset.marker, depth=3) is None:
            raise HarkitError(f"{archive} does not contain {dataset.marker!r}: it is not the {dataset.title} archive")
        publish(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _extract_into(dataset: Dataset, archive: Path, target: Path) -> None:
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as handle:
                bad = handle.testzip()
                if bad is not None:
                    raise _open_error(dataset, archive, f"CRC error in {bad}")
                handle.extractall(target)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as handle:
                handle.extractall(target, filter="data")
        else:
            raise _open_error(dataset, archive, "neither zip nor tar")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as error:
        raise _open_error(dataset, archive, str(error)) from None


def _recorded_checksums(data_dir: Path) -> dict:
    path = data_dir / "harkit-checksums.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def download(dataset: Dataset, data_dir: Path) -> Path:
    """Download the archive into `data_dir`, checking its SHA-256.

    Where the owner publishes no checksum, the hash of the first download is recorded in
    `harkit-checksums.json` and later downloads must match it.
    """
    source = dataset.source
    data_dir.mkdir(parents=True, exist_ok=True)
    recorded = _recorded_checksums(data_dir)
    known = source.sha256 or recorded.get(source.filename)
    try:
        # pooch downloads to a temporary file and moves it into place only once the hash matches.
        path = Path(
            pooch.retrieve(
                source.url,
                known_hash=f"sha256:{known}" if known else None,
                fname=source.filename,
                path=data_dir,
                progressbar=False,
            )
        )
    except ValueError as error:
        raise HarkitError(
            f"checksum mismatch for {data_dir / source.filename} downloaded from {source.url}: {error}. "
            "The file was not kept; try again, or fetch it by hand and compare its SHA-256."
        ) from None
    except Exception as error:  # network errors come from requests, urllib3 or the socket layer
        raise HarkitError(
            f"could not download {source.filename} for {dataset.key} from {source.url} ({error}). "
            f"Fetch it by hand and place it (or its extracted folder) in {data_dir}, or set --data-dir / "
            "HARKIT_DATA_DIR to where it is."
        ) from None
    if not source.sha256:
        recorded[source.filename] = sha256_of(path)
        (data_dir / "harkit-checksums.json").write_text(json.dumps(recorded, indent=2))
    return path


def locate(
    dataset: Dataset, data_dir: Path | None = None, cache_dir: Path | None = None, allow_download: bool = True
) -> tuple[Path, str]:
    """The folder holding `dataset.marker`, and a fingerprint of what it was read from."""
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    if data_dir.is_dir():
        root = _find_marker(data_dir, dataset.marker)
        if root is not None:
            return root, tree_fingerprint(root)
    archives = _candidate_archives(dataset, data_dir) if data_dir.is_dir() else []
    if not archives:
        if not allow_download:
            raise HarkitError(
                f"{dataset.title} not found in {data_dir}: place {dataset.source.filename} (from "
                f"{dataset.source.url}) or its extracted folder there, or set --data-dir / HARKIT_DATA_DIR"
            )
        archives = [download(dataset, data_dir)]
    archive = archives[0]
    checksum = archive_checksum(archive, cache_dir)
    destination = cache_dir / "extracted" / f"{dataset.key}-{checksum[:16]}"
    if not destination.is_dir():
        log.info("extracting %s into %s", archive, destination)
        extract(dataset, archive, destination)
    root = _find_marker(destination, dataset.marker, depth=3)
    assert root is not None  # extract() checked it
    return root, "sha256:" + checksum
