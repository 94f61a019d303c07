"""Models are registered by name and built from the window shape and the class count alone."""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable

from torch import nn

from harkit import HarkitError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable:
    """Decorator: register a builder `fn(window, channels, num_classes, **options)` under `name`."""

    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = fn
        return fn

    return decorate


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def model_options(name: str) -> dict:
    """The options a model takes, with their defaults."""
    builder = _get(name)
    skip = {"window", "channels", "num_classes"}
    return {p.name: p.default for p in inspect.signature(builder).parameters.values() if p.name not in skip}


def _get(name: str) -> Callable[..., nn.Module]:
    if name not in _MODELS:
        from harkit.names import did_you_mean

        hint = did_you_mean(name, _MODELS)
        raise HarkitError(f"unknown model {name!r}; {hint}valid names: {', '.join(list_models())}")
    return _MODELS[name]


def create_model(name: str, window: int, channels: int, num_classes: int, **options) -> nn.Module:
    """Build a registered model for windows of `[window, channels]`; options left as None keep the defaults."""
    builder = _get(name)
    options = {k: v for k, v in options.items() if v is not None}
    unknown = set(options) - set(model_options(name))
    if unknown:
        from harkit.names import did_you_mean

        hint = did_you_mean(sorted(unknown)[0], model_options(name))
        raise HarkitError(
            f"model {name!r} takes no options {sorted(unknown)}; {hint}it takes {sorted(model_options(name))}"
        )
    return builder(window=window, channels=channels, num_classes=num_classes, **options)
