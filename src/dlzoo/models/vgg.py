"""VGG-11/13/16/19 (Simonyan & Zisserman, 2015) from one table of 3x3 stacks, with or without BatchNorm.

As in torchvision, a variant is data: a list of output channels with "M" for a 2x2 max-pool.
Departures for small inputs: the pools use ``ceil_mode`` so that a pool reached at 1x1 (8x8 inputs meet
five pools) keeps the map at 1x1 instead of failing; a global average pool replaces the 7x7 flatten; the
4096-4096 classifier is ``hidden``-``hidden``; channels are multiplied by ``width``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from dlzoo.models.layers import ConvBNAct, act_layer, image_shape, scaled
from dlzoo.models.registry import register_model

CFGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # A
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # B
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],  # D
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],  # E
}


def make_layers(cfg: list[int | str], in_chans: int, width: float, batchnorm: bool,
                act: type[nn.Module]) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    c_in = in_chans
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))  # (B, c, ceil(H/2), ceil(W/2))
        else:
            c_out = scaled(int(v), width)
            layers.append(ConvBNAct(c_in, c_out, 3, batchnorm=batchnorm, act=act))
            c_in = c_out
    return nn.Sequential(*layers), c_in


class VGG(nn.Module):
    def __init__(self, cfg: list[int | str], in_chans: int, num_classes: int, width: float = 0.125,
                 batchnorm: bool = True, hidden: int = 256, dropout: float = 0.5, activation: str = "relu"):
        super().__init__()
        act = act_layer(activation)
        self.features, c = make_layers(cfg, in_chans, width, batchnorm, act)
        self.pool = nn.AdaptiveAvgPool2d(1)  # (B, c, 1, 1)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c, hidden), act(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), act(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W)
        return self.classifier(self.pool(self.features(x)))


def _vgg(name: str, input_shape, num_classes, **kwargs) -> VGG:
    c, _, _ = image_shape(name, input_shape)
    return VGG(CFGS[name], c, num_classes, **kwargs)


def _register(name: str) -> Callable[..., VGG]:
    """One registered builder per depth (its keyword arguments are what `model.*` may set)."""

    @register_model(name)
    def build(input_shape, num_classes, width=0.125, batchnorm=True, hidden=256, dropout=0.5,
              activation="relu") -> VGG:
        return _vgg(name, input_shape, num_classes, width=width, batchnorm=batchnorm, hidden=hidden,
                    dropout=dropout, activation=activation)

    build.__name__ = build.__qualname__ = name
    return build


vgg11, vgg13, vgg16, vgg19 = (_register(name) for name in ("vgg11", "vgg13", "vgg16", "vgg19"))
