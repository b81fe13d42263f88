"""Shared layer helpers: activations are named by strings in configs and turned into classes here, once."""

from __future__ import annotations

from torch import nn

from dlzoo.errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "hardtanh": nn.Hardtanh,
    "softplus": nn.Softplus,
    "prelu": nn.PReLU,
}


def act_layer(name: str) -> type[nn.Module]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(f"activation={name!r} is unknown; choose one of: {', '.join(sorted(ACTIVATIONS))}") from None


def flat_features(input_shape: tuple[int, ...]) -> int:
    n = 1
    for d in input_shape:
        n *= int(d)
    return n
