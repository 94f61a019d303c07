"""Train every dataset x model x seed of a benchmark grid, resuming and skipping finished runs."""

from __future__ import annotations

import logging
import multiprocessing
import os
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from harkit.evaluation.report import Grid, run_dir, write_report
from harkit.training.engine import TrainConfig, train

log = logging.getLogger(__name__)


def run_cell(config: TrainConfig, path: Path, progress: bool) -> str:
    """Train one cell; a failure is written to `error.txt` in its directory instead of stopping the grid."""
    if (path / "metrics.json").is_file():
        return "skipped"
    (path / "error.txt").unlink(missing_ok=True)
    try:
        train(config, path, resume=(path / "last.pt").is_file(), progress=progress)
        return "finished"
    except Exception as error:  # the grid goes on; the report shows the error
        path.mkdir(parents=True, exist_ok=True)
        (path / "error.txt").write_text(f"{traceback.format_exc()}\n{type(error).__name__}: {error}\n")
        log.warning("%s failed: %s", path, error)
        return "failed"


def run_grid(
    root: Path | str,
    datasets: list[str],
    models: list[str],
    seeds: list[int],
    base: TrainConfig,
    workers: int = 1,
    progress: bool = True,
) -> tuple[Path, Path]:
    """Run the grid into `root/runs/...` (in `workers` processes), then write the report."""
    root = Path(root)
    grid = Grid.load(root)
    grid.datasets = list(dict.fromkeys([*grid.datasets, *datasets]))
    grid.models = list(dict.fromkeys([*grid.models, *models]))
    grid.seeds = list(dict.fromkeys([*grid.seeds, *seeds]))
    grid.save()
    cells = [
        (replace(base, dataset=d, model=m, seed=s), run_dir(root, d, m, s))
        for d in datasets
        for m in models
        for s in seeds
    ]
    if workers <= 1:
        for config, path in cells:
            run_cell(config, path, progress)
    else:
        # Threads are shared out among the workers; spawn keeps each worker's PyTorch state its own.
        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(run_cell, replace(c, threads=c.threads or threads), p, False) for c, p in cells]
            for future in futures:
                future.result()
    return write_report(root)
