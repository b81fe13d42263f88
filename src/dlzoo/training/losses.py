"""Loss functions by name (the ``loss`` config group). Strings become modules here, once."""

from __future__ import annotations

from typing import Callable

from torch import nn

from dlzoo.errors import ConfigError

LOSSES: dict[str, Callable[..., nn.Module]] = {
    "cross_entropy": nn.CrossEntropyLoss,
}


def build_loss(name: str, **kwargs) -> nn.Module:
    if name not in LOSSES:
        raise ConfigError(f"loss.name={name!r} is unknown; choose one of: {', '.join(sorted(LOSSES))}")
    return LOSSES[name](**kwargs)
