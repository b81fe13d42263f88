"""Registry-driven model tests (timm/torchvision style): every registered model runs forward and backward."""

from __future__ import annotations

import pytest
import torch

from dlzoo.errors import ConfigError
from dlzoo.models import get_model, list_models

# Input shape per model (without batch); models not listed take digits as-is (1x8x8).
INPUTS = {"lenet5": (1, 32, 32), "cnn1d": (1, 40), "rnn": (1, 40), "lstm": (1, 40), "gru": (1, 40),
          "transformer": (1, 40)}
# Encoder-decoders take token ids (src, tgt_in) and return (B, T, vocab) logits.
SEQ2SEQ = {"transformer_seq2seq", "lstm_seq2seq"}


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_shapes(name):
    torch.manual_seed(0)
    if name in SEQ2SEQ:
        net = get_model(name, input_shape=(7,), num_classes=10)
        src, tgt_in = torch.randint(3, 10, (4, 7)), torch.randint(3, 10, (4, 5))
        src[0, 4:] = 0  # a padded row
        out = net(src, tgt_in)
        assert out.shape == (4, 5, 10)
    else:
        shape = INPUTS.get(name, (1, 8, 8))
        net = get_model(name, input_shape=shape, num_classes=10)
        out = net(torch.randn(4, *shape))
        assert out.shape == (4, 10)
    out.sum().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_registry_lists_the_foundation_models():
    assert {"logreg", "mlp", "lenet5", "cnn1d"} <= set(list_models())


def test_lenet5_matches_the_lecture_layout():
    net = get_model("lenet5", input_shape=(1, 32, 32), num_classes=10, variant="classic")
    x = torch.randn(2, 1, 32, 32)
    c1 = net.features[0](x)
    assert c1.shape == (2, 6, 28, 28)  # 6@28x28
    c3 = net.features[3](net.features[2](net.features[1](c1)))
    assert c3.shape == (2, 16, 10, 10)  # 16@10x10
    widths = [m.out_features for m in net.classifier if isinstance(m, torch.nn.Linear)]
    assert widths == [120, 84, 10]
    assert isinstance(net.features[1], torch.nn.Tanh) and isinstance(net.features[2], torch.nn.AvgPool2d)


def test_lenet5_refuses_wrong_input_size():
    with pytest.raises(ConfigError, match="image_size=32"):
        get_model("lenet5", input_shape=(1, 8, 8), num_classes=10)


@pytest.mark.parametrize("norm,cls", [("batchnorm", torch.nn.BatchNorm1d), ("layernorm", torch.nn.LayerNorm)])
def test_mlp_norm_and_dropconnect_options(norm, cls):
    from dlzoo.models.layers import DropConnectLinear

    net = get_model("mlp", input_shape=(40,), num_classes=10, hidden=[16, 8], dropconnect=0.3, **{norm: True})
    assert sum(isinstance(m, cls) for m in net.modules()) == 2
    assert sum(isinstance(m, DropConnectLinear) for m in net.modules()) == 2  # hidden layers, not the head
    with pytest.raises(ConfigError, match="choose one"):
        get_model("mlp", input_shape=(40,), num_classes=10, batchnorm=True, layernorm=True)


def test_mlp_activation_and_dropout_options():
    net = get_model("mlp", input_shape=(40,), num_classes=10, hidden=[16], activation="tanh", dropout=0.5)
    kinds = [type(m).__name__ for m in net.modules()]
    assert "Tanh" in kinds and "Dropout" in kinds
    with pytest.raises(ConfigError, match="relu"):
        get_model("mlp", input_shape=(40,), num_classes=10, activation="swishy")
