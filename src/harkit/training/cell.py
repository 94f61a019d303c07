"""One run of a grid: trained, or its failure written down so the grid goes on."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

from harkit.runs import RunInUse
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
    except RunInUse:  # another process trains it (the grid started twice); its files are not this one's to touch
        return "busy"
    except Exception as error:  # the grid goes on; the report shows the error
        path.mkdir(parents=True, exist_ok=True)
        (path / "error.txt").write_text(f"{traceback.format_exc()}\n{type(error).__name__}: {error}\n")
        log.warning("%s failed: %s", path, error)
        return "failed"
