"""Registry-driven model tests (timm/torchvision style): every registered model runs forward and backward."""

from __future__ import annotations

import pytest
import torch

from dlzoo.errors import ConfigError
from dlzoo.models import get_model, list_models

# Supported input shapes per model (without batch); 2-D CNNs not listed take every image size of the
# issue: digits as-is (8x8), MNIST (28x28), 32x32 grey and RGB (CIFAR-10).
IMAGES = [(1, 8, 8), (1, 28, 28), (1, 32, 32), (3, 32, 32)]
SIGNAL = [(1, 40)]
INPUTS = {"lenet5": [(1, 28, 28), (1, 32, 32), (3, 32, 32)], "cnn1d": SIGNAL, "mlp": [(1, 8, 8)],
          "logreg": [(1, 8, 8)], "rnn": SIGNAL, "lstm": SIGNAL, "gru": SIGNAL, "transformer": SIGNAL,
          "transformer_seq2seq": [(7,)], "lstm_seq2seq": [(7,)], "nat_seq2seq": [(7,)]}
# Encoder-decoders take token ids (src, tgt_in) and return (B, T, vocab) logits.
SEQ2SEQ = {"transformer_seq2seq", "lstm_seq2seq", "nat_seq2seq"}
# Generative networks (dlzoo.models.generative): autoencode(x[, y]) -> (reconstruction logits, mu, logvar); z -> x.
INPUTS |= {"ae": [(1, 8, 8)], "vae": [(1, 8, 8)], "tvae": [(1, 8, 8)], "cvae": [(1, 8, 8)], "gan_mlp": [(1, 2), (1, 8, 8)]}
AUTOENCODERS, GANS = {"ae", "vae", "tvae", "cvae"}, {"gan_mlp"}
# Detectors return raw (N, ...) outputs: their own test file checks the layout (tests/tasks/test_detection.py).
DETECTORS = {"yolo": (8, 8, 2 * 5 + 10), "rcnn": (663, 10 + 1 + 4)}  # rcnn: (proposals, C + 1 + 4)
INPUTS.update({name: [(1, 64, 64)] for name in DETECTORS})
CASES = [(name, shape) for name in list_models() for shape in INPUTS.get(name, IMAGES)]


@pytest.mark.parametrize("name,shape", CASES, ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in CASES])
def test_forward_backward_shapes(name, shape):
    torch.manual_seed(0)
    if name in SEQ2SEQ:
        net = get_model(name, input_shape=shape, num_classes=10)
        src, tgt_in = torch.randint(3, 10, (4, 7)), torch.randint(3, 10, (4, 5))
        src[0, 4:] = 0  # a padded row
        out = net(src, tgt_in)
        assert out.shape == (4, 5, 10)
        out.sum().backward()
        return
    net = get_model(name, input_shape=shape, num_classes=10)
    if name in AUTOENCODERS | GANS:
        _generative_forward_backward(name, net, shape)
        return
    x = torch.randn(2, *shape)
    out = net(x)
    if name in DETECTORS:
        assert out.shape == (2, *DETECTORS[name])
        out.sum().backward()
        assert all(p.grad is not None for p in net.parameters())
        return
    outs = out if isinstance(out, tuple) else (out,)  # training mode: (logits, *aux_logits) for GoogLeNet
    assert all(o.shape == (2, 10) for o in outs)
    sum(o.sum() for o in outs).backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    net.eval()
    with torch.no_grad():
        assert net(x).shape == (2, 10)  # eval mode: the logits only


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


def test_lenet5_pads_28x28_inputs_to_the_32x32_layout():
    net = get_model("lenet5", input_shape=(1, 28, 28), num_classes=10)
    assert net.features[0](torch.randn(2, 1, 28, 28)).shape == (2, 6, 28, 28)


def test_mlp_activation_and_dropout_options():
    net = get_model("mlp", input_shape=(40,), num_classes=10, hidden=[16], activation="tanh", dropout=0.5)
    kinds = [type(m).__name__ for m in net.modules()]
    assert "Tanh" in kinds and "Dropout" in kinds
    with pytest.raises(ConfigError, match="relu"):
        get_model("mlp", input_shape=(40,), num_classes=10, activation="swishy")


def _generative_forward_backward(name, net, shape):
    if name in GANS:
        fake = net(torch.randn(2, net.latent_dim))
        assert fake.shape == (2, *shape) and net.discriminate(fake).shape == (2,)
        net.discriminate(fake).sum().backward()  # reaches both nets through the sample
        params = list(net.parameters())
    else:
        x, y = torch.rand(2, *shape), torch.tensor([3, 7])
        logits, mu, logvar = net.autoencode(x, y)
        assert logits.shape == (2, *shape) and mu.shape == (2, net.latent_dim)
        assert (logvar is None) == (name == "ae")
        (logits.sum() + mu.sum()).backward()
        params = [p for n, p in net.named_parameters() if "logvar" not in n]
        assert net.eval()(x, y).shape == (2, *shape)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
