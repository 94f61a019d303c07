"""Runs of a grid as Ray tasks: on a local Ray instance, or on the cluster `RAY_ADDRESS` names.

Each run is one task that asks Ray for as many CPUs as the threads it trains with (`TrainConfig.threads`, 1 if
unset), so Ray packs as many runs on each node as its cores hold. A task is `grid.run_cell`: a finished run is
skipped, an interrupted one resumes, and a failure is written to the run's `error.txt` like any other. A worker
that dies (killed for memory, a lost node) is recorded the same way by the driver. On a cluster the output folder
must be on a file system every node sees, as the runs write there.
Install with `pip install harkit[ray]`.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable
from pathlib import Path

from harkit import HarkitError
from harkit.training.engine import TrainConfig

log = logging.getLogger(__name__)


def _ray():
    try:
        import ray
    except ImportError:
        raise HarkitError("--ray needs Ray: pip install 'harkit[ray]' (or pip install ray)") from None
    return ray


def _task(config: TrainConfig, path: str) -> str:
    """One run, in a Ray worker process; returns finished, skipped or failed."""
    import torch

    from harkit.training.cell import run_cell

    torch.set_num_threads(config.threads or 1)
    return run_cell(config, Path(path), False)


def connect(address: str | None = None) -> bool:
    """Join `address` (default: `RAY_ADDRESS`) or start a local Ray instance; True if this call started Ray."""
    ray = _ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
        log.info("joined the Ray cluster at %s", address)
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        # The tasks pass run configurations and statuses only: a small object store will do.
        ray.init(num_cpus=cores, include_dashboard=False, object_store_memory=128 * 1024**2, log_to_driver=False)
        log.info("started a local Ray instance with %d CPUs", cores)
    return True


def run_on_ray(
    cells: list[tuple[TrainConfig, Path]],
    on_finish: Callable[[TrainConfig, Path, str], None],
    address: str | None = None,
) -> dict[Path, str]:
    """Train `cells` (configuration, run directory) as Ray tasks; `on_finish` hears of each as it ends.

    Runs already finished on disk are skipped without a task. Returns each run's status.
    """
    ray = _ray()
    statuses: dict[Path, str] = {}
    todo = []
    for config, path in cells:
        if (path / "metrics.json").is_file():
            statuses[path] = "skipped"
            on_finish(config, path, "skipped")
        else:
            todo.append((config, path))
    if not todo:
        return statuses
    started = connect(address)
    try:
        remote = ray.remote(_task)
        pending = {
            remote.options(num_cpus=config.threads or 1, max_retries=0).remote(config, str(path)): (config, path)
            for config, path in todo
        }
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            config, path = pending.pop(done[0])
            try:
                status = ray.get(done[0])
            except Exception as error:  # the worker died: recorded like a failed run, the grid goes on
                path.mkdir(parents=True, exist_ok=True)
                (path / "error.txt").write_text(f"{traceback.format_exc()}\n{type(error).__name__}: {error}\n")
                log.warning("%s failed on Ray: %s", path, error)
                status = "failed"
            statuses[path] = status
            on_finish(config, path, status)
    finally:
        if started:
            ray.shutdown()
    return statuses
