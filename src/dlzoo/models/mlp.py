"""Multilayer perceptron, softmax regression and linear regression (the lectures' first models)."""

from __future__ import annotations

from typing import Callable

from torch import nn

from dlzoo.models.layers import ActSpec, DropConnectLinear, act_layer, flat_features
from dlzoo.models.registry import register_model


class MLP(nn.Module):
    """Flatten -> [Linear (DropConnect) -> (BatchNorm | LayerNorm) -> act -> Dropout] * len(hidden) -> Linear."""

    def __init__(self, in_features: int, num_classes: int, hidden: list[int],
                 act: Callable[[], nn.Module] = nn.ReLU, dropout: float = 0.0, batchnorm: bool = False,
                 layernorm: bool = False, dropconnect: float = 0.0):
        super().__init__()
        if batchnorm and layernorm:
            from dlzoo.errors import ConfigError

            raise ConfigError("model.batchnorm and model.layernorm are both true: choose one normalisation")
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            # the hidden layers only: the output layer stays a plain Linear (as in Wan et al.'s MNIST nets)
            layers.append(DropConnectLinear(width, h, dropconnect) if dropconnect else nn.Linear(width, h))
            if batchnorm:
                layers.append(nn.BatchNorm1d(h))
            elif layernorm:
                layers.append(nn.LayerNorm(h))
            layers.append(act())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.features(x))  # (B, num_classes)


@register_model()
def mlp(input_shape, num_classes, hidden=(256, 128), activation: ActSpec = "relu", dropout=0.0, batchnorm=False,
        layernorm=False, dropconnect=0.0) -> MLP:
    return MLP(flat_features(input_shape), num_classes, list(hidden), act_layer(activation), dropout, batchnorm,
               layernorm, dropconnect)


@register_model()
def logreg(input_shape, num_classes) -> MLP:
    """Softmax regression: an MLP without hidden layers. With ``task=regress`` (one output) it is linear
    regression, which the regression task compares with the closed-form least-squares solution."""
    return MLP(flat_features(input_shape), num_classes, [])
