"""A run directory as one object: its config, metrics, status, checkpoints, model, deployment facts and data.

Everything downstream of training (evaluate, export, explain, predict, transfer, resume) opens a run through
`Run`, so checkpoints are read in one way only: without unpickling code (see `harkit.training.checkpoint`).
This module sits low in the package: it imports datasets, models and checkpoints, never the training engine
or evaluation, so none of them forms an import circle with it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import fields
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harkit import HarkitError
from harkit.training.checkpoint import load_checkpoint, model_from_checkpoint, write_text_whole

log = logging.getLogger(__name__)

SOURCE_FILE = "source.json"  # where the run's data came from: absolute paths and a fingerprint
TOML_COPY = "harkit.toml"  # a folder dataset's description, copied into the run
FAILED_FILE = "failed.json"  # written when a run stops on an error (see `mark_failed`)
GRID_ERROR_FILE = "error.txt"  # what a failed benchmark cell holds (see `harkit.training.grid`)
FOLD_GLOB = "fold-*"
LOCK_FILE = ".lock"  # held while a process trains into the run (see `run_lock`)


class Run:
    """A run directory written by `harkit train`.

    Args:
        path: the run directory (it holds `config.json`).

    Raises:
        HarkitError: `path` does not exist or is not a harkit run directory.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise HarkitError(f"{self.path} does not exist; pass a run directory written by `harkit train --out DIR`")
        config = self.path / "config.json"
        if not config.is_file():
            folds = fold_dirs(self.path)
            hint = f" (it holds {len(folds)} cross-validation folds: pass one, e.g. {folds[0]})" if folds else ""
            raise HarkitError(
                f"{self.path} is not a harkit run directory: it has no config.json{hint}; pass a folder written "
                "by `harkit train --out DIR`"
            )
        self.config: dict = _read_json(config)
        self._checkpoints: dict[tuple[str, str], dict] = {}

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def metrics(self) -> dict | None:
        """`metrics.json` (test metrics and cost) of an evaluated run, else None."""
        path = self.path / "metrics.json"
        return _read_json(path) if path.is_file() else None

    @property
    def status(self) -> str:
        """`finished` (evaluated), `failed` (stopped on an error) or `interrupted` (can be resumed)."""
        if (self.path / "metrics.json").is_file():
            return "finished"
        if (self.path / FAILED_FILE).is_file() or (self.path / GRID_ERROR_FILE).is_file():
            return "failed"
        return "interrupted"

    def checkpoint(self, which: str = "best", device: str | torch.device = "cpu") -> dict:
        """`best.pt` (best validation macro F1) or `last.pt` (resume state), loaded without unpickling code."""
        if which not in ("best", "last"):
            raise HarkitError(f"unknown checkpoint {which!r}; a run holds best and last")
        key = (which, str(device))
        if key not in self._checkpoints:
            path = self.path / f"{which}.pt"
            if not path.is_file():
                action = "continue it with --resume" if (self.path / "last.pt").is_file() else "train it again"
                raise HarkitError(
                    f"{self.path} holds no trained model ({path.name}); {action}: harkit train ... --out {self.path}"
                )
            self._checkpoints[key] = load_checkpoint(path, device)
        return self._checkpoints[key]

    def model(self, which: str = "best", device: str | torch.device = "cpu") -> nn.Module:
        """The run's model with the weights of `which`, in eval mode."""
        return model_from_checkpoint(self.checkpoint(which, device), device)

    @property
    def model_name(self) -> str:
        """The registry name of the run's model (`sann`, `cnn` ...), from its config."""
        return self.config.get("model") or self.checkpoint()["model"]["name"]

    @cached_property
    def info(self) -> dict:
        """What a deployment needs: dataset, model, channels, classes, window, step, rate and normalisation."""
        checkpoint = self.checkpoint()
        dataset_json = self.path / "dataset.json"
        if not dataset_json.is_file():
            raise HarkitError(f"{self.path} lacks dataset.json (the window step of its data); train it again")
        return {
            "dataset": checkpoint.get("dataset", self.config.get("dataset")),
            "model": checkpoint["model"]["name"],
            "channels": list(checkpoint["channels"]),
            "classes": list(checkpoint["classes"]),
            "window": checkpoint["model"]["window"],
            "step": _read_json(dataset_json)["step"],
            "sampling_rate": checkpoint["sampling_rate"],
            "mean": list(checkpoint["mean"]),
            "std": list(checkpoint["std"]),
        }

    @property
    def source(self) -> dict:
        """Where the data came from (`source.json`; runs written before it existed get what config.json says)."""
        path = self.path / SOURCE_FILE
        if path.is_file():
            return _read_json(path)
        return {"dataset": self.config["dataset"], "data_dir": self.config.get("data_dir")}

    def dataset(self, data_dir: Path | str | None = None):
        """The prepared windows the run was trained and tested on, found wherever the run is opened from.

        The data is looked for at `data_dir` (where it moved to), then at the absolute place recorded at
        training, then as the config names it. When it is found nowhere, the prepared arrays cached at
        training are used if they are still there.

        Raises:
            HarkitError: the data is found nowhere and its prepared arrays are no longer cached.
        """
        from harkit.datasets import PrepareConfig, SubjectSplit, prepare

        values = dict(self.config)
        values["split"] = SubjectSplit(**{**values["split"], "test_subjects": tuple(values["split"]["test_subjects"])})
        for key in ("channels", "train_subjects"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        # The same fields TrainConfig.prepare_config passes, by name, so a field added to both is carried.
        config = PrepareConfig(**{f.name: values[f.name] for f in fields(PrepareConfig) if f.name in values})
        options = self.config.get("dataset_options") or {}
        source = self.source
        if data_dir is not None and not Path(data_dir).exists():
            raise HarkitError(f"--data-dir {data_dir} does not exist; pass the folder where the run's data is now")
        key, where = self._locate(source, data_dir)
        if key is not None:
            if data_dir is not None and source.get("fingerprint") and source.get("dataset_path"):
                _warn_if_changed(Path(key), source["fingerprint"], options)
            folder_dataset = source.get("dataset_path") is not None
            return prepare(
                key,
                config,
                data_dir=None if folder_dataset else where,
                allow_download=where is None and not folder_dataset,
                **options,
            )
        cached = self._cached_arrays()
        if cached is not None:
            return cached
        place = str(source.get("dataset_path") or source.get("data_dir") or source["dataset"])
        if not Path(place).is_absolute():  # a run written before runs recorded absolute paths
            place += " (relative to the folder training ran in)"
        raise HarkitError(
            f"the data of {self.path} is not found: {source['dataset']} was read from {place}, which is gone, and its "
            "prepared arrays are no longer cached; pass --data-dir with the folder where the data is now"
        )

    def _locate(self, source: dict, data_dir: Path | str | None) -> tuple[str | None, str | None]:
        """(dataset key or folder, data folder) to prepare from; (None, None) when the data is not found."""
        if source.get("dataset_path") or _is_folder_dataset(source["dataset"]):
            from harkit.datasets.paths import is_dataset_path

            original = Path(source.get("dataset_path") or source["dataset"])
            if data_dir is not None:  # the dataset itself, or the folder it was moved into
                for candidate in (Path(data_dir), Path(data_dir) / original.name):
                    if is_dataset_path(candidate):
                        return str(candidate.resolve()), None
                hint = f" (its description is copied in {self.path / TOML_COPY})" if original.suffix != ".npz" else ""
                raise HarkitError(
                    f"--data-dir {data_dir} holds no {TOML_COPY}, no NAME_TRAIN.ts / NAME_TEST.ts pair and no "
                    f"{original.name}; pass the folder (or .npz file) this run was trained on{hint}"
                )
            for candidate in (original, Path(source["dataset"])):
                if is_dataset_path(candidate):
                    return str(candidate.resolve()), None
            return None, None
        candidates = [data_dir] if data_dir is not None else [source.get("data_dir"), self.config.get("data_dir")]
        if all(candidate is None for candidate in candidates):
            return source["dataset"], None  # the default data folder, which harkit manages itself
        for candidate in candidates:
            if candidate is not None and Path(candidate).is_dir():
                return source["dataset"], str(Path(candidate).resolve())
        return None, None

    def _cached_arrays(self):
        path = self.path / "dataset.json"
        folder = _read_json(path).get("cache") if path.is_file() else None
        if not folder or not (Path(folder) / "meta.json").is_file():
            return None
        from harkit.datasets import pipeline

        try:
            prepared = pipeline._load(Path(folder))  # checked against its manifest
        except pipeline.DamagedCache as error:
            log.warning("the prepared arrays of %s in %s cannot be used (%s)", self.path, folder, error)
            return None
        log.warning("the data of %s is not where it was; using its prepared arrays cached in %s", self.path, folder)
        return prepared


def _is_folder_dataset(key: str) -> bool:
    from harkit.datasets import list_datasets

    return key not in list_datasets()


def _warn_if_changed(place: Path, fingerprint: str, options: dict) -> None:
    from harkit.datasets.download import tree_fingerprint
    from harkit.datasets.paths import dataset_from_path

    if fingerprint.startswith("tree:"):  # runs written before readers fingerprinted what they read
        now = tree_fingerprint(place)
    else:
        now = dataset_from_path(place, **options).find(None, place, False)[1]
    if now != fingerprint:
        log.warning(
            "the recordings in %s differ from those the run was trained on (files, sizes or dates changed); "
            "its results may not be comparable",
            place,
        )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise HarkitError(f"cannot read {path} ({error}); the run directory is damaged, train it again") from None


def fold_dirs(path: Path | str) -> list[Path]:
    """The fold runs (`fold-00`, `fold-01` ...) of a cross-validation folder, in order."""
    return sorted(p for p in Path(path).glob(FOLD_GLOB) if (p / "config.json").is_file())


def record_source(out: Path, dataset: str, data_dir: str | None, meta: dict) -> None:
    """Write `source.json` (absolute paths and a fingerprint of the data) and copy a folder's harkit.toml.

    With these a run is evaluated, explained and used for prediction from any working directory, and its
    data is found (or named) after the folder moved.
    """
    from harkit.datasets.paths import is_dataset_path

    source: dict = {"dataset": dataset, "data_dir": str(Path(data_dir).resolve()) if data_dir else None}
    if _is_folder_dataset(dataset) and is_dataset_path(dataset):  # a harkit.toml folder, a .ts pair, an .npz
        place = Path(dataset).resolve()
        source["dataset_path"] = str(place)
        if (place / TOML_COPY).is_file():
            with contextlib.suppress(OSError):
                shutil.copyfile(place / TOML_COPY, out / TOML_COPY)
    source["fingerprint"] = meta.get("fingerprint")  # the reader's own, from harkit.datasets.prepare
    source["cache"] = meta.get("cache")
    (out / SOURCE_FILE).write_text(json.dumps(source, indent=2))


class RunInUse(HarkitError):
    """Another process is training into this run directory."""


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold `out/.lock` while training into `out`; a second process fails at once, naming the first.

    Two processes in one run (two `--only` lists that overlap, a grid started twice) would interleave their
    checkpoints and history, and the run would look finished and fine. The operating system drops the lock
    when its process dies, so a killed run never leaves it held. A directory made here that holds nothing else
    when training fails early is removed again.
    """
    try:
        import fcntl
    except ImportError:  # not on Windows
        yield
        return
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise RunInUse(
                f"{out} is being trained by another process ({handle.read().strip() or 'unknown'}); wait for "
                "it to finish, or train into another --out"
            ) from None
        except OSError as error:  # a file system without locks (some network mounts): train unguarded
            log.debug("no lock on %s: %s", out, error)
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        try:
            yield
        finally:
            if made and [path.name for path in out.iterdir()] == [LOCK_FILE]:
                shutil.rmtree(out)


def mark_failed(out: Path | str, message: str) -> None:
    """Record that a run stopped on an error, so `Run.status` says `failed` rather than `interrupted`."""
    out = Path(out)
    if out.is_dir():
        (out / FAILED_FILE).write_text(json.dumps({"error": message}, indent=2))


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int, autocast=None) -> torch.Tensor:
    """Logits for all windows of `x`, batch by batch, in eval mode."""
    was_training = model.training
    model.eval()
    outputs = []
    for start in range(0, len(x), batch_size):
        with autocast or contextlib.nullcontext():
            outputs.append(model(x[start : start + batch_size]).float())
    model.train(was_training)
    if not outputs:
        return torch.empty(0)
    return torch.cat(outputs)


FOLD_METRICS = ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall")


def fold_row(fold: int, metrics: dict) -> dict:
    """One fold's line of a cross-validation summary."""
    return {"fold": fold, "test_subjects": metrics["test_subjects"], **{k: metrics[k] for k in FOLD_METRICS}}


def write_fold_summary(folder: Path, dataset: str, model: str, scheme: str, total: int, rows: list[dict]) -> dict:
    """Mean and std of each metric over the folds, written as `crossval.json`.

    A subset of the folds gets its own file, `crossval-folds-0-2.json`, so it never replaces the summary of all.
    """
    covered = [row["fold"] for row in rows]
    values = {k: [row[k] for row in rows] for k in FOLD_METRICS}
    summary = {
        "dataset": dataset,
        "model": model,
        "scheme": scheme,
        "total_folds": total,
        "covered_folds": covered,
        "complete": len(rows) == total,
        "folds": rows,
        "mean": {k: float(np.mean(v)) for k, v in values.items()},
        "std": {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in values.items()},
    }
    name = "crossval.json" if summary["complete"] else f"crossval-folds-{'-'.join(map(str, covered))}.json"
    write_text_whole(Path(folder) / name, json.dumps(summary, indent=2))
    return summary
