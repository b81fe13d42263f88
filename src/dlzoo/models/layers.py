"""Shared layer helpers: activations are named in configs and turned into classes here, once; DropConnect."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Callable

import torch
from torch import nn

from dlzoo.errors import ConfigError

# The lecture's activations (000 §2, 004): name -> class. Parameters (Leaky ReLU's alpha = negative_slope,
# hard tanh's bounds, softplus' beta, PReLU's init) come from the mapping form of the option, e.g.
# ``model.activation={name: leaky_relu, negative_slope: 0.2}``.
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

ActSpec = str | Mapping[str, Any]


def act_layer(spec: ActSpec) -> Callable[[], nn.Module]:
    """``"gelu"`` -> ``nn.GELU``; ``{"name": "leaky_relu", "negative_slope": 0.2}`` -> a partial of ``nn.LeakyReLU``."""
    kwargs: dict[str, Any] = {}
    if isinstance(spec, Mapping):
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        spec = spec.get("name", "")
    try:
        cls = ACTIVATIONS[spec]
    except (KeyError, TypeError):
        raise ConfigError(f"activation={spec!r} is unknown; choose one of: {', '.join(sorted(ACTIVATIONS))}") from None
    if not kwargs:
        return cls
    try:
        cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"activation {spec!r} does not take {sorted(kwargs)}: {exc}") from None
    return functools.partial(cls, **kwargs)


def flat_features(input_shape: tuple[int, ...]) -> int:
    n = 1
    for d in input_shape:
        n *= int(d)
    return n


class DropConnectLinear(nn.Linear):
    """A linear layer whose *weights* are dropped, each with probability ``p``, per forward pass in training
    (DropConnect, Wan et al. 2013), where dropout drops activations.

    Departure from the paper: the kept weights are scaled by 1/(1-p) during training and the full weight
    matrix is used at inference (the "inverted" scaling of dropout), instead of the paper's Gaussian
    moment-matching inference. One mask is drawn per batch, not per sample, to keep it a single matmul.
    """

    def __init__(self, in_features: int, out_features: int, p: float = 0.0, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"dropconnect={p!r}: must be a number in [0, 1)")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in) -> (B, out)
        if not self.training or self.p == 0.0:
            return super().forward(x)
        mask = torch.empty_like(self.weight).bernoulli_(1.0 - self.p)
        return nn.functional.linear(x, self.weight * mask / (1.0 - self.p), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"
