"""ResNet (He et al., 2016): basic and bottleneck blocks, 1x1 projection shortcuts where the shape changes,
and the plain network of the same depth (``shortcut=False``) for the degradation comparison.

Options from lecture 7 where they fit: ``groups`` makes the bottleneck's 3x3 a group convolution
(ResNeXt, with ``base_width`` channels per group), ``dilate_last`` swaps the last stage's stride for
dilation 2 (DeepLab; torchvision's ``replace_stride_with_dilation``), keeping its resolution.
Departures for 8-32 px inputs (as in the paper's own CIFAR nets): a 3x3 stride-1 stem without the
7x7/2 conv and max-pool; channels (64, 128, 256, 512) are multiplied by ``width``. The stride of a
bottleneck sits on its 3x3 conv (torchvision's "ResNet V1.5"), not on the first 1x1; the last BatchNorm
of each residual branch starts at zero (the plain nets keep the default init: they have no identity path).
"""

from __future__ import annotations

import torch
from torch import nn

from dlzoo.models.layers import ConvBNAct, classifier_head, image_shape, scaled
from dlzoo.models.registry import register_model


def _projection(c_in: int, c_out: int, stride: int) -> nn.Module:
    # option B of the paper: identity when the shape is kept, a 1x1 conv + BN when it changes
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int = 1, dilation: int = 1, shortcut: bool = True,
                 groups: int = 1, base_width: int = 64):
        super().__init__()  # groups / base_width shape bottlenecks only (the builders expose them for resnet50)
        self.body = nn.Sequential(ConvBNAct(c_in, planes, 3, stride, dilation=dilation),
                                  ConvBNAct(planes, planes, 3, dilation=dilation, act=None))
        self.shortcut = _projection(c_in, planes, stride) if shortcut else None
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)  # F(x) + x
        return self.act(out)


class Bottleneck(nn.Module):
    """1x1 (reduce) -> 3x3 (stride, groups) -> 1x1 (expand x4), plus the shortcut."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1, dilation: int = 1, shortcut: bool = True,
                 groups: int = 1, base_width: int = 64):
        super().__init__()
        mid = int(planes * base_width / 64) * groups  # ResNeXt: groups x base_width channels
        c_out = planes * self.expansion
        self.body = nn.Sequential(ConvBNAct(c_in, mid, 1),
                                  ConvBNAct(mid, mid, 3, stride, groups=groups, dilation=dilation),
                                  ConvBNAct(mid, c_out, 1, act=None))
        self.shortcut = _projection(c_in, c_out, stride) if shortcut else None
        self.act = nn.ReLU()

    forward = BasicBlock.forward


class ResNet(nn.Module):
    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int], in_chans: int,
                 num_classes: int, width: float = 0.25, shortcut: bool = True, groups: int = 1,
                 base_width: int = 64, dilate_last: bool = False, dropout: float = 0.0):
        super().__init__()
        c = scaled(64, width)
        self.stem = ConvBNAct(in_chans, c, 3)  # (B, c, H, W)
        stages = []
        for i, n in enumerate(layers):
            planes = scaled(64 * 2**i, width)
            stride = 1 if i == 0 else 2
            dilation = 1
            if dilate_last and i == len(layers) - 1:
                stride, dilation = 1, 2  # same receptive-field growth, no downsampling
            blocks = []
            for j in range(n):
                blocks.append(block(c, planes, stride if j == 0 else 1, dilation, shortcut, groups, base_width))
                c = planes * block.expansion
            stages.append(nn.Sequential(*blocks))  # stage i: (B, c, H / 2^i, W / 2^i)
        self.stages = nn.Sequential(*stages)
        self.head = classifier_head(c, num_classes, dropout)
        if shortcut:  # zero-init the last BN of every residual branch: each block starts as the identity
            for m in self.stages.modules():  # (Goyal et al. 2017; torchvision's zero_init_residual=True)
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.body[-1][1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W)
        return self.head(self.stages(self.stem(x)))  # (B, num_classes)


def _resnet(name: str, block, layers: list[int], input_shape, num_classes, **kwargs) -> ResNet:
    c, _, _ = image_shape(name, input_shape)
    return ResNet(block, layers, c, num_classes, **kwargs)


@register_model()
def resnet18(input_shape, num_classes, width=0.25, dilate_last=False, dropout=0.0) -> ResNet:
    return _resnet("resnet18", BasicBlock, [2, 2, 2, 2], input_shape, num_classes, width=width,
                   dilate_last=dilate_last, dropout=dropout)


@register_model()
def resnet34(input_shape, num_classes, width=0.25, dilate_last=False, dropout=0.0) -> ResNet:
    return _resnet("resnet34", BasicBlock, [3, 4, 6, 3], input_shape, num_classes, width=width,
                   dilate_last=dilate_last, dropout=dropout)


@register_model()
def resnet50(input_shape, num_classes, width=0.25, groups=1, base_width=64, dilate_last=False,
             dropout=0.0) -> ResNet:
    """Bottleneck blocks; ``groups=32, base_width=4`` gives ResNeXt-50 (32x4d)."""
    return _resnet("resnet50", Bottleneck, [3, 4, 6, 3], input_shape, num_classes, width=width, groups=groups,
                   base_width=base_width, dilate_last=dilate_last, dropout=dropout)


@register_model()
def plain18(input_shape, num_classes, width=0.25, dilate_last=False, dropout=0.0) -> ResNet:
    """ResNet-18 without its shortcuts: the 18-layer plain net of the degradation experiment."""
    return _resnet("plain18", BasicBlock, [2, 2, 2, 2], input_shape, num_classes, width=width, shortcut=False,
                   dilate_last=dilate_last, dropout=dropout)


@register_model()
def plain34(input_shape, num_classes, width=0.25, dilate_last=False, dropout=0.0) -> ResNet:
    """ResNet-34 without its shortcuts."""
    return _resnet("plain34", BasicBlock, [3, 4, 6, 3], input_shape, num_classes, width=width, shortcut=False,
                   dilate_last=dilate_last, dropout=dropout)
