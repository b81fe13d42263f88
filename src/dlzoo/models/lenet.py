"""LeNet-5 (LeCun et al., 1998) as drawn in the lecture.

32x32x1 -> C1 6@28x28 (5x5) -> S2 6@14x14 -> C3 16@10x10 (5x5) -> S4 16@5x5 -> F5 120 -> F6 84 -> 10.
Departures from the paper, as in most re-implementations: C3 connects to all six S2 maps (the paper's
sparse connection table is dropped), S2/S4 are plain pooling without trainable coefficients, and the
output is a linear layer with softmax cross-entropy instead of RBF units. 28x28 inputs (MNIST) are
zero-padded by 2 pixels in C1, which is how the paper fed its 28x28 digits to the 32x32 input.
"""

from __future__ import annotations

from torch import nn

from dlzoo.models.registry import register_model

VARIANTS = {"classic": (nn.Tanh, nn.AvgPool2d), "modern": (nn.ReLU, nn.MaxPool2d)}


class LeNet5(nn.Module):
    def __init__(self, in_chans: int = 1, num_classes: int = 10, variant: str = "classic", dropout: float = 0.0,
                 padding: int = 0):
        super().__init__()
        act, pool = VARIANTS[variant]
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, 5, padding=padding), act(), pool(2),  # (B, 6, 14, 14)
            nn.Conv2d(6, 16, 5), act(), pool(2),  # (B, 16, 5, 5)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), act(), nn.Dropout(dropout),
            nn.Linear(120, 84), act(), nn.Dropout(dropout),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@register_model()
def lenet5(input_shape, num_classes, variant="classic", dropout=0.0) -> LeNet5:
    from dlzoo.errors import ConfigError

    if variant not in VARIANTS:
        raise ConfigError(f"model.variant={variant!r}: choose one of {sorted(VARIANTS)}")
    if len(input_shape) != 3 or tuple(input_shape[-2:]) not in ((32, 32), (28, 28)):
        raise ConfigError(f"lenet5 takes (C, 32, 32) or (C, 28, 28) images, got inputs of shape {tuple(input_shape)}: "
                          "for image data set model.image_size=32; for 1-D data choose a 1-D model (e.g. model=cnn1d)")
    return LeNet5(input_shape[0], num_classes, variant, dropout, padding=(32 - input_shape[-1]) // 2)
