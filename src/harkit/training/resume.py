"""Resuming a run: the options given now must be those the run was started with, except more epochs or a refit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, Self

from harkit import HarkitError


class TrainConfig(Protocol):
    """What resuming needs of `harkit.training.engine.TrainConfig` (named here: this module sits below the engine)."""

    epochs: int | None
    refit: bool

    def to_json(self) -> dict: ...

    @classmethod
    def from_json(cls, data: dict) -> Self: ...


# Where the data lies and how many threads compute change nothing in the result.
FREE = ("data_dir", "threads")
UNSET = (None, "auto")  # "let harkit choose": the run's own choice, saved in config.json, stands


def resume_config(out: Path, config: TrainConfig) -> TrainConfig:
    """The configuration to resume `out` with; any difference but more epochs is refused, naming each one.

    A setting left to harkit now (None, `auto`) takes the run's saved value. More epochs, and another data
    directory or thread count, are written to `config.json`, so the finished run says what it ran.
    """
    path = out / "config.json"
    saved_json = json.loads(path.read_text())
    saved = type(config).from_json(saved_json)
    now, before = config.to_json(), saved.to_json()
    differences = []
    for name, value in now.items():
        if name in FREE or value in UNSET or value == before.get(name):
            continue
        if name == "epochs" and before.get(name) is not None and value > before[name]:
            continue
        if name == "refit" and value:  # a refit can be asked for later; it changes nothing in the run itself
            continue
        differences.append(f"{name}: the run has {_show(before.get(name))}, now {_show(value)}")
    if differences:
        raise HarkitError(
            f"--resume continues {out} with the options it was started with, but these differ: "
            f"{'; '.join(differences)}. Give the run's options again (see {path}), only more --epochs, "
            "or train into another --out"
        )
    # Where the data lies now and the threads asked for now: the saved ones may be gone or another machine's.
    free = {name: now[name] for name in FREE if now[name] not in UNSET and now[name] != before.get(name)}
    if free or (config.epochs is not None and config.epochs != saved.epochs) or config.refit != saved.refit:
        saved_json |= free
        saved_json["epochs"] = config.epochs or saved.epochs
        saved_json["refit"] = saved.refit or config.refit
        staging = path.with_suffix(".json.tmp")
        staging.write_text(json.dumps(saved_json, indent=2))
        staging.replace(path)
        return type(config).from_json(saved_json)
    return saved


def _show(value: object) -> str:
    return json.dumps(value) if isinstance(value, (dict, list, str)) else str(value)
