"""Finding a dataset's raw files: an extracted tree or an archive in the data directory, else a
checked download. Archives are extracted atomically into the cache directory, so a read-only data
directory works and an interrupted extraction leaves nothing half-written.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tarfile
import time
import uuid
import zipfile
from pathlib import Path
from typing import Protocol

import pooch

from harkit import HarkitError

log = logging.getLogger(__name__)
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")


class DatasetFacts(Protocol):
    """What finding a dataset needs to know of it.

    `harkit.datasets.base.Dataset` has these facts; this module sits below `base`, so it names them
    instead of importing the class.
    """

    key: str
    title: str
    source: object  # base.Source: url, filename, sha256
    archive_names: tuple[str, ...]
    archive_sha256: dict[str, str]
    marker: str


def default_data_dir() -> Path:
    """`HARKIT_DATA_DIR`, else `data-dir` of `harkit config`, else the user cache directory."""
    from harkit.userconfig import configured

    return Path(os.environ.get("HARKIT_DATA_DIR") or configured("data-dir") or pooch.os_cache("harkit") / "data")


def default_cache_dir() -> Path:
    """`HARKIT_CACHE_DIR`, else `cache-dir` of `harkit config`, else the user cache directory."""
    from harkit.userconfig import configured

    return Path(os.environ.get("HARKIT_CACHE_DIR") or configured("cache-dir") or pooch.os_cache("harkit") / "cache")


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
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        staging = memo_path.with_suffix(f".{os.getpid()}.tmp")
        staging.write_text(json.dumps(memo, indent=1))
        os.replace(staging, memo_path)
    except OSError as error:
        raise write_error(error, memo_path) from None
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


def _candidate_archives(dataset: DatasetFacts, data_dir: Path) -> list[Path]:
    names = {dataset.source.filename, *dataset.archive_names}
    found = []
    for folder in (data_dir, data_dir / dataset.key):
        for name in sorted(names):
            if (folder / name).is_file():
                found.append(folder / name)
    return found


def _open_error(dataset: DatasetFacts, archive: Path, reason: str) -> HarkitError:
    return HarkitError(
        f"{archive} is not a readable archive ({reason}); it is corrupt or incompletely downloaded. "
        f"Delete it and place a fresh copy of {dataset.source.filename} from {dataset.source.url} there."
    )


# A staging folder is `.<name>-<host>-<pid>-<8 hex>`: on this host, the pid says whether its maker still runs.
_STAGING = re.compile(r"^\..+-([A-Za-z0-9_.]+)-(\d+)-[0-9a-f]{8}$")
_LEGACY_STAGING = re.compile(r"^\..+-[a-z0-9_]{8}$")  # tempfile.mkdtemp names of earlier versions
_STALE_SECONDS = 24 * 3600
_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_WRITE_ERRNOS = (*_DISK_ERRNOS, errno.EACCES, errno.EPERM, errno.EROFS)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid < 1 << 22  # another user's live process; out-of-range pids never ran
    return True


def _host() -> str:
    """This machine's name as it appears in staging folders (a cache may be shared between machines)."""
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def clean_staging(parent: Path) -> None:
    """Remove staging folders that a killed extraction or preparation left in `parent`.

    A folder whose process is gone is removed at once; one of unknown origin only after a day, in case
    another machine sharing the folder is still writing it.
    """
    if not parent.is_dir():
        return
    for child in parent.iterdir():
        match = _STAGING.match(child.name)
        if match:
            gone = match.group(1) == _host() and not _alive(int(match.group(2)))
            stale = gone or time.time() - child.stat().st_mtime > _STALE_SECONDS
        elif _LEGACY_STAGING.match(child.name):
            stale = time.time() - child.stat().st_mtime > _STALE_SECONDS
        else:
            continue
        if stale and child.is_dir():
            log.info("removing %s, left over by a killed run", child)
            shutil.rmtree(child, ignore_errors=True)


def make_staging(destination: Path) -> Path:
    """A new, empty folder beside `destination` to build it in, with normal permissions (not mkdtemp's 0700)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    clean_staging(destination.parent)
    staging = destination.parent / f".{destination.name}-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir()
    except OSError as error:
        raise write_error(error, staging) from None
    return staging


def write_error(error: OSError, where: Path) -> HarkitError:
    """A failed write, said as what it is: a full disk (with the path), or a folder harkit may not write."""
    path = error.filename or where
    if error.errno in _DISK_ERRNOS:
        return HarkitError(
            f"the disk is full: could not write {path} ({error.strerror}). Free space on that disk, or point "
            "HARKIT_CACHE_DIR (or `harkit config set cache-dir DIR`) at a disk with room"
        )
    return HarkitError(
        f"could not write {path} ({error.strerror or error}); make the folder writable, or point HARKIT_CACHE_DIR "
        "at one that is"
    )


def publish(staging: Path, destination: Path) -> None:
    """Move a finished folder into place atomically; if another process got there first, keep theirs."""
    try:
        os.replace(staging, destination)
    except OSError:
        if not destination.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)


def extract(dataset: DatasetFacts, archive: Path, destination: Path) -> None:
    """Extract `archive` (and archives nested in it) into `destination`, atomically."""
    staging = make_staging(destination)
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


def _extract_into(dataset: DatasetFacts, archive: Path, target: Path) -> None:
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
    except OSError as error:
        if error.errno in _WRITE_ERRNOS:  # writing the files failed: the archive may be fine
            raise write_error(error, target) from None
        raise _open_error(dataset, archive, str(error)) from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as error:
        raise _open_error(dataset, archive, str(error)) from None


def _recorded(cache_dir: Path) -> dict:
    path = cache_dir / "archives.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _record(cache_dir: Path, name: str, checksum: str) -> None:
    """Remember an archive's SHA-256 at its first use, in the cache (never beside the data)."""
    recorded = _recorded(cache_dir)
    recorded[name] = {"sha256": checksum, "first_use": time.strftime("%Y-%m-%d")}
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        staging = cache_dir / f"archives.json.{os.getpid()}.tmp"
        staging.write_text(json.dumps(recorded, indent=1))
        os.replace(staging, cache_dir / "archives.json")
    except OSError as error:
        raise write_error(error, cache_dir / "archives.json") from None


def published_checksum(dataset: DatasetFacts, filename: str) -> str | None:
    """The SHA-256 the owner publishes (or harkit pinned) for an archive of this name, if any."""
    if filename == dataset.source.filename and dataset.source.sha256:
        return dataset.source.sha256
    return dataset.archive_sha256.get(filename)


def check_archive(dataset: DatasetFacts, archive: Path, checksum: str, cache_dir: Path) -> None:
    """Compare a local archive with the published SHA-256, else with the one recorded at its first use.

    A difference is a warning (partial or repackaged copies work, but results may not be comparable with
    published ones); `HARKIT_STRICT_CHECKSUMS=1` makes it an error.
    """
    known = published_checksum(dataset, archive.name)
    if known is not None:
        if checksum == known:
            return
        problem = f"{archive} is not the published {archive.name}: its SHA-256 is {checksum}, the published one {known}"
    else:
        name = f"{dataset.key}/{archive.name}"
        recorded = _recorded(cache_dir).get(name)
        if recorded is None:
            _record(cache_dir, name, checksum)
            return
        if recorded["sha256"] == checksum:
            return
        problem = (
            f"{archive} differs from the copy recorded at its first use on {recorded['first_use']}: its SHA-256 is "
            f"{checksum}, then {recorded['sha256']}"
        )
    if os.environ.get("HARKIT_STRICT_CHECKSUMS", "").strip() not in ("", "0"):
        raise HarkitError(
            f"{problem}. HARKIT_STRICT_CHECKSUMS is set, so harkit stops; place the published archive there, "
            "or unset HARKIT_STRICT_CHECKSUMS to go on with a warning"
        )
    log.warning("%s; results may not be comparable with results on the published archive", problem)


def download(dataset: DatasetFacts, data_dir: Path, cache_dir: Path) -> Path:
    """Download the archive into `data_dir`, checking its SHA-256.

    Where the owner publishes no checksum, the hash of the first download is recorded in the cache's
    `archives.json` and later downloads must match it.
    """
    source = dataset.source
    data_dir.mkdir(parents=True, exist_ok=True)
    recorded = _recorded(cache_dir).get(f"{dataset.key}/{source.filename}")
    known = source.sha256 or (recorded["sha256"] if recorded else None)
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
    if not known:
        _record(cache_dir, f"{dataset.key}/{source.filename}", sha256_of(path))
    return path


def _data_dir(data_dir: Path | str | None) -> tuple[Path, str | None]:
    """The data folder and who named it: `--data-dir`, `HARKIT_DATA_DIR`, the config file, or None for harkit's
    own folder in the user cache (the only one harkit creates).
    """
    if data_dir:
        return Path(data_dir), "--data-dir"
    from harkit.userconfig import resolve_data_dir

    named, origin = resolve_data_dir(None)
    return (named, origin) if named is not None else (default_data_dir(), None)


def locate(
    dataset: DatasetFacts, data_dir: Path | None = None, cache_dir: Path | None = None, allow_download: bool = True
) -> tuple[Path, str]:
    """The folder holding `dataset.marker`, and a fingerprint of what it was read from."""
    data_dir, origin = _data_dir(data_dir)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    if origin is not None and not data_dir.is_dir():
        # A folder the user named and mistyped is never created, nor downloaded into.
        raise HarkitError(
            f"{dataset.title} not found in {data_dir}: {data_dir} does not exist (set by {origin}). Check the "
            f"spelling, or create the folder and place {dataset.source.filename} there; harkit never creates a "
            "data folder you named"
        )
    if data_dir.is_dir():
        root = _find_marker(data_dir, dataset.marker)
        if root is not None:
            return root, tree_fingerprint(root)
    archives = _candidate_archives(dataset, data_dir) if data_dir.is_dir() else []
    if not archives:
        if not allow_download:
            raise HarkitError(
                f"{dataset.title} not found in {data_dir}: place {dataset.source.filename} (from "
                f"{dataset.source.url}) or its extracted folder there, or point --data-dir, HARKIT_DATA_DIR or "
                "`harkit config set data-dir DIR` at the folder that has it"
            )
        archives = [download(dataset, data_dir, cache_dir)]
    archive = archives[0]
    checksum = archive_checksum(archive, cache_dir)
    check_archive(dataset, archive, checksum, cache_dir)
    destination = cache_dir / "extracted" / f"{dataset.key}-{checksum[:16]}"
    if not destination.is_dir():
        log.info("extracting %s into %s", archive, destination)
        extract(dataset, archive, destination)
    root = _find_marker(destination, dataset.marker, depth=3)
    assert root is not None  # extract() checked it
    return root, "sha256:" + checksum
