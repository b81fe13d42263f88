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
