"""Train every dataset x model x seed of a benchmark grid, resuming and skipping finished runs."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

from harkit.evaluation.report import Grid, run_dir, write_report
from harkit.training.cell import run_cell
from harkit.training.engine import TrainConfig

log = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


# How jobs that were not trained here are reported.
SHOWN = {"skipped": "already finished, skipped", "busy": "being trained by another process, skipped"}


class Countdown:
    """Says "x of N" for the jobs of a long command, with an ETA from the jobs trained so far.

    Jobs found finished on disk count as done but not towards the time per job.
    """

    def __init__(self, total: int, say: Callable[[str], None] | None = None) -> None:
        self.total, self.done, self.trained = total, 0, 0
        self.began = time.perf_counter()
        self.say = say or log.info

    def eta(self) -> str:
        """The estimated time left, once one job has been trained (wall time per trained job x jobs left)."""
        if not self.trained or self.done >= self.total:
            return ""
        per_job = (time.perf_counter() - self.began) / self.trained
        return f", about {_duration(per_job * (self.total - self.done))} left"

    def start(self, what: str) -> None:
        """Announce job `done + 1`."""
        self.say(f"[{self.done + 1} of {self.total}] {what}: training{self.eta()}")

    def finish(self, what: str, status: str, run: Path | None = None) -> None:
        """Count one job as done and say how it ended, with the scores or error of a `run` trained here."""
        self.done += 1
        self.trained += status not in SHOWN
        detail = cell_detail(run) if run is not None and status not in SHOWN else ""
        self.say(f"[{self.done} of {self.total}] {what}: {SHOWN.get(status, status)}{detail}{self.eta()}")


def cell_detail(path: Path) -> str:
    """A run's scores for its "finished" line, or where its error is written."""
    if (path / "metrics.json").is_file():
        metrics = json.loads((path / "metrics.json").read_text())
        return f" (accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f})"
    return f" (see {path / 'error.txt'})" if (path / "error.txt").is_file() else ""


def run_grid(
    root: Path | str,
    datasets: list[str],
    models: list[str],
    seeds: list[int],
    base: TrainConfig,
    workers: int = 1,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
    ray: bool = False,
) -> tuple[Path, Path]:
    """Run the grid into `root/runs/...` (in `workers` processes), then write the report.

    `say` receives one line per run started and finished ("[3 of 18] dataset hapt, model sann, seed 0: ...",
    with an ETA); by default they are logged. With several workers only the finished lines come, and the
    epoch bars are off, so the output is one line per run.
    """
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

    def name(config: TrainConfig) -> str:
        """E.g. "dataset hapt (1 of 2), model cnn (2 of 3), seed 0 (1 of 3)"."""
        parts = (("dataset", config.dataset, datasets), ("model", config.model, models), ("seed", config.seed, seeds))
        return ", ".join(f"{what} {value} ({axis.index(value) + 1} of {len(axis)})" for what, value, axis in parts)

    countdown = Countdown(len(cells), say)
    if ray:  # one Ray task per run, locally or on the cluster RAY_ADDRESS names (training/ray_grid.py)
        from harkit.training.ray_grid import run_on_ray

        run_on_ray(cells, lambda c, p, status: countdown.finish(name(c), status, p))
    elif workers <= 1:
        for config, path in cells:
            if not (path / "metrics.json").is_file():
                countdown.start(name(config))
            status = run_cell(config, path, progress)
            countdown.finish(name(config), status, path)
    else:
        # Threads are shared out among the workers; spawn keeps each worker's PyTorch state its own.
        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        pending = []
        for config, path in cells:  # finished runs need no worker process (each one imports PyTorch)
            if (path / "metrics.json").is_file():
                countdown.finish(name(config), "skipped")
            else:
                pending.append((config, path))
        if not pending:
            return write_report(root)
        countdown.say(f"{len(pending)} runs in {workers} processes of {threads} threads each")
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(pending)), mp_context=context) as pool:
            futures = {
                pool.submit(run_cell, replace(c, threads=c.threads or threads), p, False): (c, p) for c, p in pending
            }
            for future in as_completed(futures):
                config, path = futures[future]
                countdown.finish(name(config), future.result(), path)
    return write_report(root)
