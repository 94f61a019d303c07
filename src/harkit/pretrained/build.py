"""How the shipped pretrained models were made: a finished run to safetensors + JSON, and the example recording.

Maintainers run this once per release (see each model's MODEL_CARD.md for the exact commands); users never
need it. Nothing here unpickles anything a user gives: the run's checkpoint goes through `harkit.runs.Run`.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file

from harkit import HarkitError

HAPT_ACTIVITIES = ("WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING")


def package_run(run: Path | str, dest: Path | str) -> dict:
    """Write `model.safetensors` and `info.json` (deployment facts, model options, test metrics) for a run."""
    from harkit.export import deployment_meta
    from harkit.runs import Run

    opened = Run(run)
    if opened.status != "finished":
        raise HarkitError(f"{run} is not a finished run ({opened.status}); only evaluated runs are packaged")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    checkpoint = opened.checkpoint()
    state = {key: value.detach().cpu().contiguous() for key, value in checkpoint["state_dict"].items()}
    save_file(state, dest / "model.safetensors")
    metrics = opened.metrics
    info = {
        **deployment_meta(opened.path),
        "model_options": checkpoint["model"]["options"],
        "num_classes": checkpoint["model"]["num_classes"],
        "seed": checkpoint["config"]["seed"],
        "best_epoch": checkpoint["epoch"],
        "test": {key: metrics[key] for key in ("accuracy", "macro_f1", "parameters", "macs_per_window")},
        "test_subjects": metrics["test_subjects"],
    }
    (dest / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def hapt_example(
    archive: Path | str, dest: Path | str, experiment: int, user: int, start: int, stop: int, rate: float = 50.0
) -> Path:
    """Samples `start:stop` of one HAPT experiment as CSV: timestamp (s), the six channels, activity label.

    The label is the HAPT activity of each sample among the six basic ones; transitions and unlabelled samples
    are left empty.
    """
    stem = f"exp{experiment:02d}_user{user:02d}.txt"
    with zipfile.ZipFile(archive) as handle:
        prefix = next(n for n in handle.namelist() if n.endswith("RawData/labels.txt"))[: -len("labels.txt")]

        def table(name: str, columns: list[str]) -> pd.DataFrame:
            with handle.open(prefix + name) as stream:
                return pd.read_csv(stream, sep=r"\s+", header=None, names=columns)

        acc = table(f"acc_{stem}", ["acc_x", "acc_y", "acc_z"])
        gyro = table(f"gyro_{stem}", ["gyro_x", "gyro_y", "gyro_z"])
        labels = table("labels.txt", ["experiment", "user", "activity", "start", "end"])
    if not 0 <= start < stop <= len(acc):
        raise HarkitError(f"samples {start}:{stop} are outside {stem} ({len(acc)} samples)")
    activity = np.full(len(acc), "", dtype=object)
    for row in labels[(labels.experiment == experiment) & (labels.activity <= len(HAPT_ACTIVITIES))].itertuples():
        activity[row.start : row.end + 1] = HAPT_ACTIVITIES[row.activity - 1]
    frame = pd.concat([acc, gyro], axis=1).iloc[start:stop].reset_index(drop=True)
    frame.insert(0, "timestamp", np.arange(stop - start) / rate)
    frame["activity"] = activity[start:stop]
    dest = Path(dest)
    frame.to_csv(dest, index=False, float_format="%.4f")
    return dest


def state_dict_of(path: Path | str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (no code runs while reading it)."""
    from safetensors.torch import load_file

    return load_file(str(path))
