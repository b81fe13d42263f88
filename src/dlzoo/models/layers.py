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


def _xavier(w: torch.Tensor) -> None:
    nn.init.xavier_uniform_(w)  # Glorot & Bengio 2010: Var(w) = 2 / (fan_in + fan_out), for tanh/sigmoid


def _kaiming(w: torch.Tensor) -> None:
    nn.init.kaiming_normal_(w, nonlinearity="relu")  # He et al. 2015: Var(w) = 2 / fan_in, for ReLU


INIT_SCHEMES: dict[str, Callable[[torch.Tensor], None]] = {"xavier": _xavier, "kaiming": _kaiming}


def init_weights(net: nn.Module, scheme: str) -> None:
    """Re-initialise every Linear/Conv weight of ``net`` with ``scheme`` and zero its bias (``model.init``)."""
    if scheme not in INIT_SCHEMES:
        raise ConfigError(f"model.init={scheme!r} is unknown; choose one of: {', '.join(INIT_SCHEMES)} "
                          "(or null for PyTorch's default per layer)")
    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            INIT_SCHEMES[scheme](m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


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


def scaled(channels: int, width: float, minimum: int = 4) -> int:
    """A width multiplier applied to a channel count (MobileNet's alpha), never below ``minimum``."""
    return max(minimum, int(round(channels * width)))


def image_shape(model: str, input_shape: tuple[int, ...], min_size: int = 8) -> tuple[int, int, int]:
    """Check that a 2-D CNN gets (C, H, W) images of at least ``min_size`` pixels and return the shape."""
    if len(input_shape) != 3 or min(input_shape[-2:]) < min_size:
        raise ConfigError(f"{model} takes (C, H, W) images of at least {min_size}x{min_size}, got inputs of shape "
                          f"{tuple(input_shape)}: for 1-D data choose a 1-D model (e.g. model=cnn1d), for small "
                          "images set model.image_size")
    return tuple(int(d) for d in input_shape)  # type: ignore[return-value]


class ConvBNAct(nn.Sequential):
    """Conv2d -> (BatchNorm2d) -> activation, 'same' padding for odd kernels (dilation included).

    ``groups`` > 1 is a group convolution (AlexNet's two-GPU split, ResNeXt); ``groups == in_chans`` a
    depthwise one (MobileNet); ``act=None`` leaves the output linear (MobileNet-v2's projection).
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 dilation: int = 1, batchnorm: bool = True, act: type[nn.Module] | None = nn.ReLU):
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel_size, stride, padding=dilation * (kernel_size // 2),
                                             dilation=dilation, groups=groups, bias=not batchnorm)]
        if batchnorm:
            layers.append(nn.BatchNorm2d(c_out))
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


def classifier_head(c_in: int, num_classes: int, dropout: float = 0.0) -> nn.Sequential:
    """Global average pooling -> dropout -> linear: the head of the post-VGG families."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes))
