"""Self-describing checkpoints: a checkpoint alone rebuilds and evaluates its model.

A checkpoint is a `torch.save` file read back with `torch.load(weights_only=True)`: PyTorch's restricted
unpickler, which builds tensors, containers and plain values and refuses every other object *before*
calling it. So a `best.pt` from someone else cannot run code. This format, rather than safetensors plus
JSON, keeps one file per checkpoint with the nested optimizer, scheduler and random-generator states
that `--resume` needs, and reads every checkpoint harkit has written so far without conversion.
"""

from __future__ import annotations

import errno
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harkit import HarkitError

log = logging.getLogger(__name__)

# What every harkit checkpoint holds; `last.pt` adds the optimizer, scheduler and generator states.
REQUIRED_KEYS = ("model", "state_dict", "epoch", "config", "classes", "channels", "mean", "std", "sampling_rate")
MODEL_KEYS = ("name", "window", "channels", "num_classes", "options")
# Files a write in progress stages under; a run killed mid-write leaves them, the next run removes them.
STAGING_SUFFIX = ".tmp"

# NumPy arrays and scalars, which a checkpoint written by hand may hold. These constructors only build
# arrays from the dtype, shape and bytes (or restricted-unpickled values) stored in the file. NumPy 1
# wrote them under `numpy.core`, NumPy 2 under `numpy._core`.
_multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
_NUMPY_NAMES = {
    "numpy.dtype": np.dtype,
    "numpy.ndarray": np.ndarray,
    **{
        f"numpy.{core}.multiarray.{name}": getattr(_multiarray, name)
        for core in ("core", "_core")
        for name in ("_reconstruct", "scalar")
    },
}
_dtypes = getattr(np, "dtypes", None)  # the dtype classes, a module since NumPy 1.25
_NUMPY_NAMES |= {f"numpy.dtypes.{name}": getattr(_dtypes, name) for name in getattr(_dtypes, "__all__", ())}
_NUMPY_GLOBALS = [(value, name) for name, value in _NUMPY_NAMES.items()]


def _plain(value):
    """NumPy arrays and scalars as lists and Python numbers; everything else as it is."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return value


def _write_whole(path: Path, staging: Path, write, kept: str) -> None:
    """Write through `staging`, then rename over `path`: the old file stays whole if anything fails."""
    try:
        write(staging)
        os.replace(staging, path)
    except OSError as error:
        staging.unlink(missing_ok=True)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise HarkitError(
                f"the disk is full: could not write {path}; {kept}. Free space on {path.parent} and run the "
                "command again (an interrupted training continues with --resume)"
            ) from None
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise HarkitError(f"cannot write {path} ({error.strerror}); pick a writable --out") from None
        raise
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write atomically: an interrupted or failed write leaves the previous checkpoint whole.

    Raises:
        HarkitError: the disk is full (or the folder cannot be written); nothing is left half-written.
    """
    path = Path(path)
    _write_whole(
        path,
        path.with_suffix(STAGING_SUFFIX),
        lambda staging: torch.save(_plain(payload), staging),
        "the previous checkpoint there is kept",
    )


def write_text_whole(path: Path, text: str) -> None:
    """Write a text file (metrics, summaries) atomically, with the same full-disk report as checkpoints."""
    path = Path(path)
    _write_whole(path, path.with_name(path.name + STAGING_SUFFIX), lambda s: s.write_text(text), "the old file is kept")


def remove_staging(run: Path) -> list[Path]:
    """Delete the half-written files (`last.tmp`, `history.csv.tmp` ...) a killed run left in `run`."""
    leftovers = sorted(Path(run).glob(f"*{STAGING_SUFFIX}")) if Path(run).is_dir() else []
    for leftover in leftovers:
        if leftover.is_file():
            log.info("removing %s, left by an interrupted write", leftover)
            leftover.unlink(missing_ok=True)
    return leftovers


def _refused_globals(path: Path) -> list[str]:
    try:
        return [name for name in torch.serialization.get_unsafe_globals_in_checkpoint(path) if name not in _NUMPY_NAMES]
    except Exception:
        return []


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by `save_checkpoint`, without unpickling code.

    Raises:
        HarkitError: no file; a file that is not a harkit checkpoint, is damaged, or asks to run code.
    """
    path = Path(path)
    if not path.is_file():
        raise HarkitError(f"no checkpoint at {path}; train a model there first (harkit train ... --out DIR)")
    try:
        with torch.serialization.safe_globals(_NUMPY_GLOBALS), warnings.catch_warnings():
            # A file that is not torch's is refused below; the loader's own note on its pickle protocol is noise.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:
        refused = _refused_globals(path)
        if refused:
            raise HarkitError(
                f"{path} is not a harkit checkpoint: loading it would call {', '.join(refused)}, and harkit never "
                "runs code from a file. Checkpoints written by `harkit train` (of every version) hold only tensors, "
                "numbers, strings, lists and NumPy arrays; this one was made elsewhere or altered. Train the run "
                "again, or, only for a file of your own that you trust, save its values as those plain types"
            ) from None
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise HarkitError(
            f"{path} is not a harkit checkpoint, or it is damaged ({reason[:200]}); train again with --overwrite"
        ) from None
    missing = _missing_keys(checkpoint)
    if missing:
        raise HarkitError(
            f"{path} is not a harkit checkpoint: it lacks {', '.join(missing)}. harkit reads the best.pt and "
            "last.pt that `harkit train` writes"
        )
    return _plain(checkpoint)


def _missing_keys(checkpoint) -> list[str]:
    if not isinstance(checkpoint, dict):
        return [f"the dictionary of {', '.join(REQUIRED_KEYS)} (it holds a {type(checkpoint).__name__})"]
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    spec = checkpoint.get("model")
    if "model" not in missing and not (isinstance(spec, dict) and all(key in spec for key in MODEL_KEYS)):
        missing.append(f"a model description ({', '.join(MODEL_KEYS)})")
    state = checkpoint.get("state_dict")
    if "state_dict" not in missing and not (
        isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    ):
        missing.append("a state_dict of tensors")
    return missing


def model_from_checkpoint(checkpoint: dict, device: str | torch.device = "cpu") -> nn.Module:
    """The model described by a checkpoint, with its weights, in eval mode."""
    from harkit.models import create_model

    spec = checkpoint["model"]
    model = create_model(spec["name"], spec["window"], spec["channels"], spec["num_classes"], **spec["options"])
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise HarkitError(
            f"the weights of this checkpoint do not fit its {spec['name']} model ({str(error).splitlines()[0]}); "
            "train again with --overwrite"
        ) from None
    return model.to(device).eval()
