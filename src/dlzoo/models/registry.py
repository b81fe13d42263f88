"""A model registry in the style of torchvision's ``_api.py``: builders register under their function name."""

from __future__ import annotations

import inspect
from typing import Callable

from torch import nn

from dlzoo.errors import ConfigError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str | None = None) -> Callable:
    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _MODELS:
            raise ValueError(f"model {key!r} is already registered")
        _MODELS[key] = fn
        return fn

    return wrap


def list_models() -> list[str]:
    return sorted(_MODELS)


def model_params(name: str) -> list[str]:
    """The keyword arguments a builder accepts (beyond input_shape and num_classes)."""
    sig = inspect.signature(get_builder(name))
    return [p for p in sig.parameters if p not in ("input_shape", "num_classes")]


def get_builder(name: str) -> Callable[..., nn.Module]:
    if name not in _MODELS:
        raise ConfigError(f"model.name={name!r} is not a registered model; choose one of: {', '.join(list_models())}")
    return _MODELS[name]


def get_model(name: str, **kwargs) -> nn.Module:
    builder = get_builder(name)
    allowed = set(inspect.signature(builder).parameters)
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ConfigError(f"model {name!r} has no option(s) {unknown}; it accepts: {sorted(allowed - {'input_shape', 'num_classes'})}")
    return builder(**kwargs)
