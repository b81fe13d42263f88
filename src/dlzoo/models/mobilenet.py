"""Lightweight convolutions of lecture 7 as MobileNet-style networks.

- MobileNet-v1 (Howard et al., 2017): depthwise-separable blocks -- a 3x3 depthwise conv
  (``groups == channels``: one filter per channel) then a 1x1 pointwise conv mixing channels --
  costing about 1/k^2 + 1/c_out of a full 3x3 conv. ``width`` is the paper's multiplier alpha.
- MobileNet-v2 (Sandler et al., 2018): inverted-residual bottlenecks -- 1x1 expand (x ``expansion``)
  -> 3x3 depthwise -> 1x1 linear projection, with a residual connection when the shape is kept.
- ``dilation`` (both): the last downsampling stage keeps its resolution and dilates its depthwise
  convs instead, enlarging the receptive field at no parameter cost (dilated convolution).
Departures for 8-32 px inputs: the stem conv has stride 1 (the paper: 2), so the net downsamples
4 times (v1) / 3 times (v2) instead of 5; a stride-2 3x3 on a 1x1 map keeps it 1x1 (padding 1).
"""

from __future__ import annotations

import torch
from torch import nn

from dlzoo.errors import ConfigError
from dlzoo.models.layers import ConvBNAct, classifier_head, image_shape, scaled
from dlzoo.models.registry import register_model

# v1: (output channels, stride) of each depthwise-separable block after the 32-channel stem; the paper's
# "5x" stack of stride-1 512-channel blocks is V1_REPEATS of them (``repeats``).
V1_REPEATS = 5


def v1_blocks(repeats: int = V1_REPEATS) -> list[tuple[int, int]]:
    return [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * repeats, (1024, 2), (1024, 1)]
# v2: (expansion t, channels c, repeats n, stride s) -- Table 2 of the paper; t is overridden by `expansion`
V2_BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU (MobileNet-v1's block)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, dilation: int = 1):
        super().__init__(ConvBNAct(c_in, c_in, 3, stride, groups=c_in, dilation=dilation),  # depthwise
                         ConvBNAct(c_in, c_out, 1))  # pointwise


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int, dilation: int = 1):
        super().__init__()
        mid = c_in * expansion
        layers: list[nn.Module] = [ConvBNAct(c_in, mid, 1, act=nn.ReLU6)] if expansion != 1 else []
        layers += [ConvBNAct(mid, mid, 3, stride, groups=mid, dilation=dilation, act=nn.ReLU6),  # depthwise
                   ConvBNAct(mid, c_out, 1, act=None)]  # linear bottleneck: no ReLU after the projection
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


def _dilate_last(strides: list[int], dilation: int) -> list[int]:
    """Per-block dilation: from the last stride-2 block on, when ``dilation`` > 1 (the stride is dropped)."""
    last = max(i for i, s in enumerate(strides) if s == 2)
    return [dilation if (dilation > 1 and i >= last) else 1 for i in range(len(strides))]


class MobileNetV1(nn.Module):
    def __init__(self, in_chans: int, num_classes: int, width: float = 0.25, dilation: int = 1, dropout: float = 0.0,
                 repeats: int = V1_REPEATS):
        super().__init__()
        c = scaled(32, width)
        blocks = v1_blocks(repeats)
        dilations = _dilate_last([s for _, s in blocks], dilation)
        layers: list[nn.Module] = [ConvBNAct(in_chans, c, 3)]  # (B, c, H, W)
        for (c_out, s), d in zip(blocks, dilations):
            c_out = scaled(c_out, width)
            layers.append(SeparableConv(c, c_out, 1 if d > 1 else s, d))
            c = c_out
        self.features = nn.Sequential(*layers)
        self.head = classifier_head(c, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W)
        return self.head(self.features(x))  # (B, num_classes)


class MobileNetV2(nn.Module):
    def __init__(self, in_chans: int, num_classes: int, width: float = 0.5, expansion: int = 6, dilation: int = 1,
                 dropout: float = 0.2):
        super().__init__()
        c = scaled(32, width)
        plan = [(t if t == 1 else expansion, scaled(ch, width), s if i == 0 else 1)
                for t, ch, n, s in V2_BLOCKS for i in range(n)]  # one entry per block
        dilations = _dilate_last([s for _, _, s in plan], dilation)
        layers: list[nn.Module] = [ConvBNAct(in_chans, c, 3, act=nn.ReLU6)]  # (B, c, H, W)
        for (t, c_out, s), d in zip(plan, dilations):
            layers.append(InvertedResidual(c, c_out, 1 if d > 1 else s, t, d))
            c = c_out
        c_last = scaled(1280, width)
        layers.append(ConvBNAct(c, c_last, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.head = classifier_head(c_last, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W)
        return self.head(self.features(x))  # (B, num_classes)


@register_model()
def mobilenet_v1(input_shape, num_classes, width=0.25, dilation=1, dropout=0.0, repeats=V1_REPEATS) -> MobileNetV1:
    c, _, _ = image_shape("mobilenet_v1", input_shape)
    if not (isinstance(repeats, int) and repeats >= 0):
        raise ConfigError(f"mobilenet_v1 repeats={repeats!r}: a whole number >= 0 (the paper's 5x 512-channel stack)")
    return MobileNetV1(c, num_classes, width, dilation, dropout, repeats)


@register_model()
def mobilenet_v2(input_shape, num_classes, width=0.5, expansion=6, dilation=1, dropout=0.2) -> MobileNetV2:
    c, _, _ = image_shape("mobilenet_v2", input_shape)
    return MobileNetV2(c, num_classes, width, expansion, dilation, dropout)
