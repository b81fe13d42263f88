"""GoogLeNet / Inception-v1 (Szegedy et al., 2015) with its two auxiliary classifiers, scaled to small images.

Inception block: four parallel branches concatenated along channels -- 1x1; 1x1 -> 3x3; 1x1 -> 5x5;
3x3 max-pool -> 1x1 -- the 1x1 convolutions reducing channels before the expensive ones. The channel
table is the paper's (3a..5b), multiplied by ``width``. The auxiliary classifiers sit on 4a and 4d; in
training mode the network returns ``(logits, aux1, aux2)`` and the task adds their losses with weight
``model.aux_weight`` (0.3 in the paper); in eval mode it returns the logits only and never runs them.
Departures: the stem has no stride and no pooling (7x7/2 conv + pools would shrink an 8-32 px input to
nothing), BatchNorm after each conv is optional (``batchnorm``, as in torchvision; the paper had LRN),
the pools use ``ceil_mode`` so a 1x1 map stays 1x1, and the auxiliary heads pool adaptively to 2x2
(the paper: 5x5 average pool with stride 3 on 14x14 maps).
"""

from __future__ import annotations

import torch
from torch import nn

from dlzoo.models.layers import ConvBNAct, image_shape, scaled
from dlzoo.models.registry import register_model

# name: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) -- Table 1 of the paper; "M" = 3x3/2 max-pool
BLOCKS: list[tuple[str, tuple[int, ...]] | str] = [
    ("3a", (64, 96, 128, 16, 32, 32)), ("3b", (128, 128, 192, 32, 96, 64)), "M",
    ("4a", (192, 96, 208, 16, 48, 64)), ("4b", (160, 112, 224, 24, 64, 64)), ("4c", (128, 128, 256, 24, 64, 64)),
    ("4d", (112, 144, 288, 32, 64, 64)), ("4e", (256, 160, 320, 32, 128, 128)), "M",
    ("5a", (256, 160, 320, 32, 128, 128)), ("5b", (384, 192, 384, 48, 128, 128)),
]
AUX_AFTER = ("4a", "4d")


class Inception(nn.Module):
    def __init__(self, c_in: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, cp: int, batchnorm: bool = True):
        super().__init__()
        self.branch1 = ConvBNAct(c_in, c1, 1, batchnorm=batchnorm)
        self.branch3 = nn.Sequential(ConvBNAct(c_in, c3r, 1, batchnorm=batchnorm), ConvBNAct(c3r, c3, 3, batchnorm=batchnorm))
        # a true 5x5 (torchvision's GoogLeNet uses 3x3 here, a known slip it keeps for its weights)
        self.branch5 = nn.Sequential(ConvBNAct(c_in, c5r, 1, batchnorm=batchnorm), ConvBNAct(c5r, c5, 5, batchnorm=batchnorm))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, 1, padding=1), ConvBNAct(c_in, cp, 1, batchnorm=batchnorm))
        self.out_chans = c1 + c3 + c5 + cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c_in, H, W) -> (B, c1+c3+c5+cp, H, W)
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


class AuxHead(nn.Module):
    """Auxiliary classifier: avg-pool -> 1x1 conv (128) -> FC (1024) -> dropout 0.7 -> FC, scaled by width."""

    def __init__(self, c_in: int, num_classes: int, width: float, batchnorm: bool = True):
        super().__init__()
        c, hidden = scaled(128, width), scaled(1024, width)
        self.pool = nn.AdaptiveAvgPool2d(2)  # (B, c_in, 2, 2)
        self.conv = ConvBNAct(c_in, c, 1, batchnorm=batchnorm)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c * 4, hidden), nn.ReLU(), nn.Dropout(0.7),
                                nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(self.pool(x)))  # (B, num_classes)


class GoogLeNet(nn.Module):
    def __init__(self, in_chans: int, num_classes: int, width: float = 0.25, aux: bool = True, dropout: float = 0.4,
                 batchnorm: bool = True):
        super().__init__()
        c_stem = scaled(192, width)
        self.stem = nn.Sequential(ConvBNAct(in_chans, scaled(64, width), 3, batchnorm=batchnorm),
                                  ConvBNAct(scaled(64, width), scaled(64, width), 1, batchnorm=batchnorm),
                                  ConvBNAct(scaled(64, width), c_stem, 3, batchnorm=batchnorm))  # (B, c_stem, H, W)
        self.blocks = nn.ModuleDict()
        self.aux_heads = nn.ModuleDict()
        c = c_stem
        for i, entry in enumerate(BLOCKS):
            if entry == "M":
                self.blocks[f"pool{i}"] = nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)  # (B, c, H/2, W/2)
                continue
            name, chans = entry
            block = Inception(c, *(scaled(k, width, minimum=2) for k in chans), batchnorm=batchnorm)
            self.blocks[name] = block
            c = block.out_chans
            if aux and name in AUX_AFTER:
                self.aux_heads[name] = AuxHead(c, num_classes, width, batchnorm)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:  # x: (B, C, H, W)
        x = self.stem(x)
        aux_logits = []
        for name, block in self.blocks.items():
            x = block(x)
            if self.training and name in self.aux_heads:
                aux_logits.append(self.aux_heads[name](x))
        logits = self.head(x)  # (B, num_classes)
        return (logits, *aux_logits) if aux_logits else logits


@register_model()
def googlenet(input_shape, num_classes, width=0.25, aux=True, dropout=0.4, batchnorm=True) -> GoogLeNet:
    c, _, _ = image_shape("googlenet", input_shape)
    return GoogLeNet(c, num_classes, width, aux, dropout, batchnorm)
