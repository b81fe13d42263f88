"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012), scaled to small images.

Kept from the paper: ReLU, local response normalisation after conv1 and conv2, overlapping max-pooling
(3x3 windows, stride 2), a large first kernel, dropout in the two hidden fully connected layers, and
(``groups=2``) the grouped conv2/conv4/conv5 of the two-GPU split.
Departures for 8-32 px inputs: conv1 is 5x5 with stride 1 instead of 11x11 with stride 4, the pools
pad by 1 (so a 1x1 map stays 1x1), an adaptive average pool makes the classifier input 2x2 whatever the
input size (as torchvision does with 6x6), and the channel counts are multiplied by ``width``.
"""

from __future__ import annotations

import torch
from torch import nn

from dlzoo.models.layers import act_layer, image_shape, scaled
from dlzoo.models.registry import register_model

CHANNELS = (96, 256, 384, 384, 256)  # conv1..conv5 of the paper


class AlexNet(nn.Module):
    def __init__(self, in_chans: int, num_classes: int, width: float = 0.25, hidden: int = 256,
                 first_kernel: int = 5, groups: int = 1, dropout: float = 0.5, activation: str = "relu"):
        super().__init__()
        c1, c2, c3, c4, c5 = (scaled(c, width, minimum=2 * groups) // groups * groups for c in CHANNELS)
        act = act_layer(activation)

        def lrn() -> nn.Module:
            return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)  # the paper's constants

        def pool() -> nn.Module:
            return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)  # overlapping: window 3 > stride 2

        self.features = nn.Sequential(
            nn.Conv2d(in_chans, c1, first_kernel, padding=first_kernel // 2), act(), lrn(), pool(),  # (B, c1, H/2, W/2)
            nn.Conv2d(c1, c2, 5, padding=2, groups=groups), act(), lrn(), pool(),  # (B, c2, H/4, W/4)
            nn.Conv2d(c2, c3, 3, padding=1), act(),
            nn.Conv2d(c3, c4, 3, padding=1, groups=groups), act(),
            nn.Conv2d(c4, c5, 3, padding=1, groups=groups), act(), pool(),  # (B, c5, H/8, W/8)
        )
        self.avgpool = nn.AdaptiveAvgPool2d(2)  # (B, c5, 2, 2)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout), nn.Linear(c5 * 4, hidden), act(),
            nn.Dropout(dropout), nn.Linear(hidden, hidden), act(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W)
        return self.classifier(self.avgpool(self.features(x)))  # (B, num_classes)


@register_model()
def alexnet(input_shape, num_classes, width=0.25, hidden=256, first_kernel=5, groups=1, dropout=0.5,
            activation="relu") -> AlexNet:
    c, _, _ = image_shape("alexnet", input_shape)
    return AlexNet(c, num_classes, width, hidden, first_kernel, groups, dropout, activation)
