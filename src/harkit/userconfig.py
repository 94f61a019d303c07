"""The user's persistent settings: `config.toml` in the user config directory (`harkit config set KEY VALUE`).

The data folder is resolved as `--data-dir`, else `HARKIT_DATA_DIR`, else `data-dir` here, else the user cache;
the cache folder likewise with `HARKIT_CACHE_DIR` and `cache-dir`. The file lives in
`platformdirs.user_config_dir("harkit")` (`$XDG_CONFIG_HOME/harkit` on Linux), or in `HARKIT_CONFIG_DIR`.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import platformdirs

from harkit import HarkitError

# CLI key -> what it sets. Every value is a folder, stored as an absolute path.
KEYS = {
    "data-dir": "folder with dataset archives or extracted trees (after --data-dir and HARKIT_DATA_DIR)",
    "cache-dir": "folder for extracted archives and prepared arrays (after --cache-dir and HARKIT_CACHE_DIR)",
}


def config_path() -> Path:
    """Where the settings are read from and written to."""
    folder = os.environ.get("HARKIT_CONFIG_DIR") or platformdirs.user_config_dir("harkit")
    return Path(folder) / "config.toml"


def load() -> dict[str, str]:
    """The saved settings (CLI keys to values); empty when no file exists."""
    path = config_path()
    if not path.is_file():
        return {}
    try:
        values = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise HarkitError(
            f"{path} is not valid TOML ({error}); fix it, or delete it and run `harkit config set`"
        ) from None
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise HarkitError(f"{path}: unknown key(s) {unknown}; valid keys: {', '.join(KEYS)}")
    return {key: str(value) for key, value in values.items()}


def _check_key(key: str) -> None:
    if key not in KEYS:
        from harkit.names import did_you_mean

        raise HarkitError(f"unknown setting {key!r}; {did_you_mean(key, KEYS)}valid keys: {', '.join(KEYS)}")


def _write(values: dict[str, str]) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # json.dumps of a str is a valid TOML basic string (same escapes for quotes, backslashes and controls).
    text = "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
    staging = path.with_suffix(".toml.tmp")
    staging.write_text("# harkit settings; edit with `harkit config set KEY VALUE`\n" + text)
    os.replace(staging, path)
    return path


def set_value(key: str, value: str) -> Path:
    """Save `key` (a folder, stored absolute) and return the config file's path."""
    _check_key(key)
    folder = Path(value).expanduser().resolve()
    if key == "data-dir" and not folder.is_dir():
        raise HarkitError(f"data-dir {folder} is not a folder; create it or give the folder holding the archives")
    return _write(load() | {key: str(folder)})


def unset_value(key: str) -> Path:
    """Remove `key` from the settings."""
    _check_key(key)
    values = load()
    values.pop(key, None)
    return _write(values)


def configured(key: str) -> Path | None:
    """The saved folder for `key`, or None."""
    value = load().get(key)
    return Path(value) if value else None


def resolve_data_dir(explicit: Path | str | None = None) -> tuple[Path | None, str]:
    """The data folder and where it came from: the argument, HARKIT_DATA_DIR, the config file, else None."""
    if explicit:
        return Path(explicit), "--data-dir"
    if os.environ.get("HARKIT_DATA_DIR"):
        return Path(os.environ["HARKIT_DATA_DIR"]), "HARKIT_DATA_DIR"
    saved = configured("data-dir")
    if saved is not None:
        return saved, str(config_path())
    return None, "user cache"
