"""Multilayer perceptron and softmax regression (the lectures' first models)."""

from __future__ import annotations

from torch import nn

from dlzoo.models.layers import act_layer, flat_features
from dlzoo.models.registry import register_model


class MLP(nn.Module):
    """Flatten -> [Linear -> (BatchNorm) -> act -> Dropout] * len(hidden) -> Linear."""

    def __init__(self, in_features: int, num_classes: int, hidden: list[int], act: type[nn.Module] = nn.ReLU,
                 dropout: float = 0.0, batchnorm: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batchnorm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(act())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.features(x))  # (B, num_classes)


@register_model()
def mlp(input_shape, num_classes, hidden=(256, 128), activation="relu", dropout=0.0, batchnorm=False) -> MLP:
    return MLP(flat_features(input_shape), num_classes, list(hidden), act_layer(activation), dropout, batchnorm)


@register_model()
def logreg(input_shape, num_classes) -> MLP:
    """Softmax regression: an MLP without hidden layers."""
    return MLP(flat_features(input_shape), num_classes, [])
