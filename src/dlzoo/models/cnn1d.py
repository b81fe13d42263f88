"""A small 1-D CNN for signals such as MNIST-1D: stages of conv-BN-ReLU blocks with max pooling between
stages, then global average pooling and a linear head."""

from __future__ import annotations

from torch import nn

from dlzoo.models.registry import register_model


class CNN1d(nn.Module):
    def __init__(self, in_chans: int, num_classes: int, channels: list[int], kernel_size: int = 5,
                 dropout: float = 0.0, batchnorm: bool = True, spatial_dropout: float = 0.0,
                 convs_per_stage: int = 1):
        super().__init__()
        blocks: list[nn.Module] = []
        c_in = in_chans
        for i, c in enumerate(channels):  # one stage per width, VGG-style: convs_per_stage convs at full resolution
            for _ in range(convs_per_stage):
                blocks += [nn.Conv1d(c_in, c, kernel_size, padding=kernel_size // 2, bias=not batchnorm)]
                if batchnorm:
                    blocks.append(nn.BatchNorm1d(c))
                blocks.append(nn.ReLU())
                if spatial_dropout:  # whole channels dropped (Tompson et al. 2015)
                    blocks.append(nn.Dropout1d(spatial_dropout))
                c_in = c
            if i < len(channels) - 1:
                blocks.append(nn.MaxPool1d(2))  # (B, c, L/2)
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes))

    def forward(self, x):  # x: (B, C, L)
        return self.head(self.pool(self.features(x)))


@register_model()
def cnn1d(input_shape, num_classes, channels=(32, 64, 128), kernel_size=5, dropout=0.0, batchnorm=True,
          spatial_dropout=0.0, convs_per_stage=1) -> CNN1d:
    if len(input_shape) != 2:
        from dlzoo.errors import ConfigError

        raise ConfigError(f"cnn1d takes (C, L) signals, got inputs of shape {tuple(input_shape)}: use data=mnist1d "
                          "or an image model (e.g. model=lenet5)")
    return CNN1d(input_shape[0], num_classes, list(channels), kernel_size, dropout, batchnorm, spatial_dropout,
                 convs_per_stage)
