"""From a dataset key to normalised train / validation / test windows, cached on disk."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from harkit import HarkitError
from harkit.datasets.base import Dataset, Recording, Windows, sensor_groups
from harkit.datasets.config import PrepareConfig
from harkit.datasets.download import default_cache_dir, make_staging, publish, write_error
from harkit.datasets.registry import get_dataset
from harkit.datasets.splits import test_mask, validation_mask
from harkit.datasets.time_split import split_in_time
from harkit.datasets.windows import WindowPlan, fill_gaps, longest_segment, plan_windows, window_step

log = logging.getLogger(__name__)

# Bump whenever a change in this package changes the arrays it produces: old cache entries are then ignored.
PREPROCESS_VERSION = 3
PARTS = ("train", "val", "test")


@dataclass
class Prepared:
    """Train, validation and test windows plus `meta` (channels, classes, statistics, subjects)."""

    train: Windows
    val: Windows
    test: Windows
    meta: dict

    def part(self, name: str) -> Windows:
        return getattr(self, name)

    def export(self, folder: Path) -> None:
        """Write `x_<part>.npy`, `y_<part>.npy`, `subject_<part>.npy` and `meta.json`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in PARTS:
            part = self.part(name)
            if name == "val" and len(part) == 0:
                continue
            np.save(folder / f"x_{name}.npy", np.ascontiguousarray(part.x, np.float32))
            np.save(folder / f"y_{name}.npy", np.asarray(part.y, np.int64))
            np.save(folder / f"subject_{name}.npy", np.asarray(part.subject, np.int64))
        (folder / "meta.json").write_text(json.dumps(self.meta, indent=2))


def cache_key(dataset: Dataset, config: PrepareConfig, fingerprint: str) -> str:
    """Hash of everything that produced the arrays."""
    payload = {
        "dataset": dataset.key,
        "options": dataset.options,
        "source": fingerprint,
        "config": asdict(config),
        "version": PREPROCESS_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _select_channels(dataset: Dataset, names: tuple[str, ...] | None) -> list[int]:
    if names is None:
        return list(range(len(dataset.channels)))
    unknown = [n for n in names if n not in dataset.channels]
    if unknown:
        raise HarkitError(f"unknown channels {unknown} for {dataset.key}; channels are {dataset.channels}")
    return [dataset.channels.index(n) for n in names]


def _window(
    dataset: Dataset, raw: list[Recording] | Windows, window: int, overlap: float, columns: list[int]
) -> WindowPlan | Windows:
    """Windows of the chosen channels: planned for recordings, as published for pre-windowed data."""
    all_columns = len(columns) == len(dataset.channels)
    if isinstance(raw, Windows):
        if (window, overlap) != (dataset.window, dataset.overlap):
            raise HarkitError(
                f"{dataset.key} is published already windowed ({dataset.window} samples, "
                f"{dataset.overlap:.0%} overlap); it cannot be re-windowed to {window} / {overlap}"
            )
        return raw if all_columns else Windows(raw.x[:, :, columns], raw.y, raw.subject, raw.session)
    recordings = []
    for recording in raw:
        signals = fill_gaps(recording.signals[:: dataset.downsample])
        labels = recording.labels[:: dataset.downsample]
        signals = signals if all_columns else signals[:, columns]
        recordings.append(Recording(signals, labels, recording.subject, recording.session))
    plan = plan_windows(recordings, window, window_step(window, overlap))
    if len(plan) == 0:
        longest = longest_segment(recordings)
        raise HarkitError(
            f"window {window} is longer than every labelled segment of {dataset.key} (the longest has "
            f"{longest} samples at {dataset.rate:g} Hz); use a window of at most {longest}"
        )
    return plan


def _keep_training_subjects(
    dataset: Dataset, subject: np.ndarray, rest: np.ndarray, wanted: tuple[int, ...]
) -> np.ndarray:
    """The windows of `rest` whose subject is one of `wanted`; a wanted subject with none is an error."""
    missing = sorted(set(wanted) - set(np.unique(subject).tolist()))
    if missing:
        raise HarkitError(
            f"training subjects {missing} are not in the data of {dataset.key}; its subjects are "
            f"{np.unique(subject).tolist()}: fix --train-subjects"
        )
    tested = sorted(set(wanted) - set(np.unique(subject[rest]).tolist()))
    if tested:
        raise HarkitError(
            f"training subjects {tested} are test subjects in this split of {dataset.key}, so nothing of theirs is "
            f"left to train on; drop them from --train-subjects or choose other test subjects with --split"
        )
    return rest[np.isin(subject[rest], wanted)]


def _report_subjects(meta: dict, config: PrepareConfig) -> None:
    """Say which subjects went where; warn when validation quietly takes subjects the user chose to train on."""
    subjects = meta["subjects"]
    if "time_split" in meta:  # split = "time" of a harkit.toml
        log.info(
            "%s: split in time: the last %g of every recording is tested, validation is the last %g of the part "
            "before it, with a gap of %d samples (one window) before each part",
            meta["dataset"],
            meta["time_split"]["test_fraction"],
            config.val_fraction,
            meta["time_split"]["gap"],
        )
        return
    log.info(
        "%s: train subjects %s, validation subjects %s (whole training subjects, --val-fraction %g), test subjects %s",
        meta["dataset"],
        *(_few(subjects[part]) for part in ("train", "val")),
        config.val_fraction,
        _few(subjects["test"]),
    )
    if config.train_subjects is not None and subjects["val"]:
        taken = subjects["val"]
        log.warning(
            "--train-subjects %s: validation takes subject%s %s (--val-fraction %g), so only %s train; "
            "pass --val-fraction 0 to train on all of them",
            ",".join(map(str, config.train_subjects)),
            "s" if len(taken) > 1 else "",
            ", ".join(map(str, taken)),
            config.val_fraction,
            subjects["train"],
        )


def _few(ids: list, shown: int = 12) -> str:
    """Subject ids for a message; thousands of them (a .ts or .npz where every series is a group) are cut short."""
    return str(ids) if len(ids) <= shown else f"[{', '.join(map(str, ids[:shown]))}, ... ({len(ids)} in all)]"


def _channel_statistics(x: np.ndarray, rows: int = 1 << 14) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of `[n, window, channels]` in float64, NaN left out.

    Block by block, merged with Chan et al.'s pairwise update: no copy of the whole array is made.
    """
    samples = x.reshape(-1, x.shape[2])
    count, mean, squares = (np.zeros(samples.shape[1]) for _ in range(3))
    for first in range(0, len(samples), rows):
        block = np.ascontiguousarray(samples[first : first + rows].T)  # reductions along contiguous memory
        valid = ~np.isnan(block)
        n = valid.sum(axis=1)
        block_mean = np.nansum(block, axis=1, dtype=np.float64) / np.maximum(n, 1)
        centred = np.where(valid, block - block_mean.astype(np.float32)[:, None], 0)
        total = np.maximum(count + n, 1)
        delta = block_mean - mean
        mean += delta * n / total
        squares += np.einsum("ij,ij->i", centred, centred, dtype=np.float64) + delta**2 * count * n / total
        count = count + n
    return mean, np.sqrt(squares / np.maximum(count, 1))


def _normalise(parts: dict[str, Windows], normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    channels = parts["train"].x.shape[2]
    if normalize:
        mean, std = _channel_statistics(parts["train"].x)
        mean = mean.astype(np.float32)
        std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0).astype(np.float32)
    else:
        mean, std = np.zeros(channels, np.float32), np.ones(channels, np.float32)
    for part in parts.values():
        part.x -= mean
        part.x /= std
        if np.isnan(np.add.reduce(part.x, axis=None)):  # a sum is NaN when a value is, without a mask
            part.x[np.isnan(part.x)] = 0.0  # channels missing for a whole recording become the training mean
    return mean, std


def _build(dataset: Dataset, root: Path, config: PrepareConfig) -> Prepared:
    window = config.window or dataset.window
    overlap = dataset.overlap if config.overlap is None else config.overlap
    columns = _select_channels(dataset, config.channels)
    windows = _window(dataset, dataset.read(root), window, overlap, columns)
    in_time = config.split.kind == "default" and getattr(dataset, "test_fraction", None) is not None
    if in_time:  # split = "time" in a harkit.toml: the end of every recording is tested
        windows, time_test, time_val = split_in_time(windows, dataset.test_fraction, config.val_fraction)
    subjects = np.unique(windows.subject)
    if len(subjects) < 2 and not in_time and (config.split.kind != "default" or dataset.default_split.by == "subject"):
        raise HarkitError(
            f"{dataset.key} has windows of one subject only ({subjects.tolist()}): a split by subject needs at "
            "least two, one to train on and one to test on; add recordings of other subjects"
        )
    is_test = time_test if in_time else test_mask(windows, config.split, dataset.default_split)
    if not is_test.any() or is_test.all():
        raise HarkitError(
            f"the split {config.split.describe()} leaves {'no' if not is_test.any() else 'only'} test "
            f"windows in {dataset.key}; subjects present: {np.unique(windows.subject).tolist()}"
        )
    # Parts are chosen by index first so that each window is copied once, into its part.
    rest = np.flatnonzero(~is_test)
    if config.train_subjects is not None:
        rest = _keep_training_subjects(dataset, windows.subject, rest, config.train_subjects)
    by_session = config.split.kind == "default" and dataset.default_split.by == "session"
    is_val = (
        time_val[rest]
        if in_time
        else validation_mask(
            windows.subject[rest], windows.session[rest], config.val_fraction, config.seed, by_session=by_session
        )
    )
    parts = {"train": windows.take(rest[~is_val]), "val": windows.take(rest[is_val]), "test": windows.take(is_test)}
    mean, std = _normalise(parts, config.normalize)
    channel_names = [dataset.channels[i] for i in columns]
    meta = {
        "dataset": dataset.key,
        "options": dataset.options,
        "channels": channel_names,
        "sensors": [list(group) for group in sensor_groups(channel_names)]
        if config.channels
        else [list(group) for group in dataset.sensors],
        # The selected channels of each device: rotation augmentation turns a device's sensors together.
        "devices": {
            name: [c for c in names if c in channel_names]
            for name, names in dataset.devices.items()
            if set(names) & set(channel_names)
        },
        "classes": list(dataset.classes),
        "window": window,
        "overlap": overlap,
        "step": window_step(window, overlap),
        "sampling_rate": dataset.rate,
        "split": config.split.describe(),
        "val_fraction": config.val_fraction,
        "seed": config.seed,
        "normalize": config.normalize,
        "mean": mean.tolist(),
        "std": std.tolist(),
        "subjects": {name: sorted(np.unique(p.subject).tolist()) for name, p in parts.items()},
        "counts": {name: np.bincount(p.y, minlength=len(dataset.classes)).tolist() for name, p in parts.items()},
        "version": PREPROCESS_VERSION,
    }
    if in_time:
        meta["time_split"] = {"test_fraction": dataset.test_fraction, "gap": window}
    return Prepared(parts["train"], parts["val"], parts["test"], meta)


MANIFEST = "manifest.json"


class DamagedCache(Exception):
    """A cache entry that cannot be trusted: a file missing, cut short or unreadable."""


def _save(prepared: Prepared, folder: Path) -> None:
    """Write the arrays into a staging folder, then the manifest (sizes of every file) last, then publish."""
    staging = make_staging(folder)
    try:
        for name in PARTS:
            part = prepared.part(name)
            np.save(staging / f"x_{name}.npy", part.x)
            np.save(staging / f"y_{name}.npy", part.y)
            np.save(staging / f"subject_{name}.npy", part.subject)
            np.save(staging / f"session_{name}.npy", part.session.astype(str))
        (staging / "meta.json").write_text(json.dumps(prepared.meta, indent=2))
        sizes = {path.name: path.stat().st_size for path in sorted(staging.iterdir())}
        (staging / MANIFEST).write_text(json.dumps({"version": PREPROCESS_VERSION, "sizes": sizes}, indent=1))
        publish(staging, folder)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise write_error(error, staging) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _load(folder: Path) -> Prepared:
    """The cached arrays; `DamagedCache` when the manifest is missing or a file differs from it."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        for name, size in manifest["sizes"].items():
            actual = (folder / name).stat().st_size
            if actual != size:
                raise DamagedCache(f"{name} has {actual} bytes, {size} were written")
        parts = {
            name: Windows(
                np.load(folder / f"x_{name}.npy", mmap_mode="r"),
                np.load(folder / f"y_{name}.npy"),
                np.load(folder / f"subject_{name}.npy"),
                np.load(folder / f"session_{name}.npy"),
            )
            for name in PARTS
        }
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError, KeyError, EOFError) as error:  # a missing file, a garbled header or JSON
        raise DamagedCache(str(error)) from None
    return Prepared(parts["train"], parts["val"], parts["test"], meta)


def _cached(folder: Path) -> Prepared | None:
    """The entry in `folder`, or None when there is none or it is damaged (then it is removed, with a warning)."""
    if not folder.is_dir():
        return None
    if (folder / "meta.json").is_file() and not (folder / MANIFEST).is_file():
        log.info("the cached arrays in %s predate manifests; they are rebuilt", folder)
        shutil.rmtree(folder, ignore_errors=True)
        return None
    try:
        prepared = _load(folder)
    except DamagedCache as error:
        log.warning("the cached arrays in %s are damaged (%s); they are rebuilt", folder, error)
        shutil.rmtree(folder, ignore_errors=True)
        return None
    log.info("using cached arrays in %s", folder)
    return prepared


def prepare(
    dataset: str | Dataset,
    config: PrepareConfig | None = None,
    *,
    data_dir: Path | str | None = None,
    cache_dir: Path | str | None = None,
    use_cache: bool = True,
    allow_download: bool = True,
    **options,
) -> Prepared:
    """Read, window, split and normalise a dataset; the result is cached under a key of all its inputs.

    Args:
        dataset: a registered key (see `list_datasets()`) or a `Dataset`.
        config: window, overlap, split, validation fraction, channels, normalisation and seed.
        data_dir: where archives or extracted trees are looked for (and downloaded to).
        cache_dir: where extracted archives and prepared arrays are kept.
        use_cache: read and write the cache.
        allow_download: download a missing archive.
        **options: reader options of the dataset, e.g. `transitions=True` for HAPT.
    """
    dataset = get_dataset(dataset, **options)
    config = config or PrepareConfig()
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    root, fingerprint = dataset.find(Path(data_dir) if data_dir else None, cache_dir, allow_download)
    # A folder dataset's key is an absolute path: only its last part names the entry, which stays under cache_dir.
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(dataset.key).name) or "dataset"
    folder = cache_dir / "prepared" / f"{name}-{cache_key(dataset, config, fingerprint)}"
    prepared = _cached(folder) if use_cache else None
    if prepared is None:
        prepared = _build(dataset, root, config)
        prepared.meta["cache"] = str(folder)
        if use_cache:
            _save(prepared, folder)
    prepared.meta["fingerprint"] = fingerprint  # what was read, by the reader's own measure (runs record it)
    _report_subjects(prepared.meta, config)
    return prepared
