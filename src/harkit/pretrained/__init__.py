"""Pretrained models shipped inside the package: usable with no data and no training.

Each model is a folder beside this file: `model.safetensors` (the weights, tensors only), `info.json` (the
deployment facts, as `harkit.runs.Run.info`, plus the model's options), `MODEL_CARD.md` and one short
example recording, `example.csv`. Loading reads only these two formats: nothing is unpickled.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from torch import nn

from harkit import HarkitError

PRETRAINED_NAMES: tuple[str, ...] = ("hapt-tiny",)
# The keys of `Run.info`, which predict and export read.
INFO_KEYS = ("dataset", "model", "channels", "classes", "window", "step", "sampling_rate", "mean", "std")


def _folder(name: str):
    if name not in PRETRAINED_NAMES:
        raise HarkitError(f"no pretrained model {name!r}; harkit ships {', '.join(PRETRAINED_NAMES)}")
    folder = resources.files(__name__) / name
    if not folder.joinpath("info.json").is_file():
        raise HarkitError(f"the files of pretrained model {name!r} are missing from this install; reinstall harkit")
    return folder


def pretrained_info(name: str) -> dict:
    """Everything `info.json` says about a pretrained model: deployment facts, options and test metrics."""
    return json.loads(_folder(name).joinpath("info.json").read_text())


def load_pretrained(name: str) -> tuple[nn.Module, dict]:
    """A shipped model in eval mode and its deployment facts (the keys of `Run.info`, plus `model_options`).

    Raises:
        HarkitError: an unknown name, or files missing from the install.
    """
    from safetensors.torch import load

    from harkit.models import create_model

    folder = _folder(name)
    facts = pretrained_info(name)
    model = create_model(
        facts["model"], facts["window"], len(facts["channels"]), len(facts["classes"]), **facts["model_options"]
    )
    model.load_state_dict(load(folder.joinpath("model.safetensors").read_bytes()))
    info = {key: facts[key] for key in INFO_KEYS} | {"model_options": facts["model_options"]}
    return model.eval(), info


def example_recording(dest: Path | str, name: str = "hapt-tiny") -> Path:
    """Write the model's example recording (CSV: timestamp in seconds, its channels, `activity`) to `dest`.

    `dest` may be a folder, where `example.csv` is written. Existing files are not overwritten.
    """
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / "example.csv"
    if dest.exists():
        raise HarkitError(f"{dest} already exists; give another path or remove it first")
    if not dest.parent.is_dir():
        raise HarkitError(f"the folder {dest.parent} does not exist; create it first")
    with _folder(name).joinpath("example.csv").open("rb") as source, open(dest, "wb") as target:
        shutil.copyfileobj(source, target)
    return dest


def model_card(name: str) -> str:
    """The model card (Markdown) of a pretrained model."""
    return _folder(name).joinpath("MODEL_CARD.md").read_text()
