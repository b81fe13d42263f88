"""DenseNet (Huang et al., 2017): dense blocks where every layer gets the concatenation of all earlier
feature maps and adds ``growth_rate`` new ones; transition layers (BN-ReLU-1x1 conv-2x2 avg-pool) shrink
the channels by ``compression`` (theta). ``bottleneck=True`` puts a 1x1 conv (4 x growth) before each 3x3
(DenseNet-B; with compression < 1, DenseNet-BC).
Departures for 8-32 px inputs (as the paper's CIFAR nets): a 3x3 stride-1 stem to 2 x growth channels
instead of the 7x7/2 conv + max-pool; the transition pools use ``ceil_mode`` so a 1x1 map stays 1x1.
"""

from __future__ import annotations

import torch
from torch import nn

from dlzoo.models.layers import classifier_head, image_shape, scaled
from dlzoo.models.registry import register_model


def _bn_relu_conv(c_in: int, c_out: int, kernel_size: int) -> nn.Sequential:
    # pre-activation order of the paper: BN -> ReLU -> conv
    return nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, c_out, kernel_size,
                                                                      padding=kernel_size // 2, bias=False))


class DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth_rate: int, bottleneck: bool, dropout: float):
        super().__init__()
        layers = [_bn_relu_conv(c_in, 4 * growth_rate, 1)] if bottleneck else []
        layers.append(_bn_relu_conv(4 * growth_rate if bottleneck else c_in, growth_rate, 3))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c, H, W) -> (B, c + growth, H, W)
        return torch.cat([x, self.body(x)], dim=1)


class DenseNet(nn.Module):
    def __init__(self, in_chans: int, num_classes: int, block_config: list[int], growth_rate: int = 12,
                 compression: float = 0.5, bottleneck: bool = True, dropout: float = 0.0):
        super().__init__()
        c = 2 * growth_rate
        layers: list[nn.Module] = [nn.Conv2d(in_chans, c, 3, padding=1, bias=False)]  # (B, 2k, H, W)
        for i, n in enumerate(block_config):
            for _ in range(n):
                layers.append(DenseLayer(c, growth_rate, bottleneck, dropout))
                c += growth_rate
            if i < len(block_config) - 1:  # transition: theta * c channels, half the resolution
                c_out = max(1, int(compression * c))
                layers += [_bn_relu_conv(c, c_out, 1), nn.AvgPool2d(2, 2, ceil_mode=True)]
                c = c_out
        layers += [nn.BatchNorm2d(c), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = classifier_head(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W)
        return self.head(self.features(x))  # (B, num_classes)


def _check(name: str, input_shape, compression: float) -> int:
    if not 0 < compression <= 1:
        from dlzoo.errors import ConfigError

        raise ConfigError(f"model.compression={compression!r}: must be a number in (0, 1]")
    return image_shape(name, input_shape)[0]


@register_model()
def densenet(input_shape, num_classes, block_config=(6, 6, 6), growth_rate=12, width=1.0, compression=0.5,
             bottleneck=True, dropout=0.0) -> DenseNet:
    """A small DenseNet-BC in the manner of the paper's CIFAR models (3 blocks, k=12)."""
    c = _check("densenet", input_shape, compression)
    return DenseNet(c, num_classes, list(block_config), scaled(growth_rate, width, 2), compression, bottleneck, dropout)


@register_model()
def densenet121(input_shape, num_classes, growth_rate=32, width=0.25, compression=0.5, dropout=0.0) -> DenseNet:
    """DenseNet-121's blocks (6, 12, 24, 16), growth rate 32 x width."""
    c = _check("densenet121", input_shape, compression)
    return DenseNet(c, num_classes, [6, 12, 24, 16], scaled(growth_rate, width, 2), compression, True, dropout)
