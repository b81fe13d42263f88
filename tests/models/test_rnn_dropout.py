"""Variational (locked) dropout of the recurrent classifiers: one mask per sequence for every time step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import compose
from dlzoo import builders
from dlzoo.errors import ConfigError
from dlzoo.models import get_model
from dlzoo.models.rnn import LockedDropout


def _inputs_seen_by_each_layer(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    hooks = [layer.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
             for layer in net.rnn.layers]
    net(x)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_locked_mask_is_constant_over_time_and_differs_between_samples(cell):
    torch.manual_seed(0)
    net = get_model(cell, input_shape=(16, 12), num_classes=3, hidden=16, num_layers=2, variational_dropout=0.5).train()
    seen = _inputs_seen_by_each_layer(net, torch.ones(8, 16, 12))
    assert torch.equal(seen[0], torch.ones(8, 12, 16))  # the raw input is not dropped
    out = net.rnn.layers[0](seen[0])[0].detach()  # what the first layer hands on, (B, T, H)
    dropped = seen[1] == 0  # (B, T, F): the second layer's input, the first layer's outputs after the mask
    assert dropped.any() and not dropped.all()
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))  # one mask per sequence, every step
    assert len({tuple(row.tolist()) for row in dropped[:, 0]}) > 1  # masks differ between sequences
    kept = ~dropped
    assert torch.allclose(seen[1][kept], 2.0 * out[kept])  # kept units scaled by 1 / (1 - p)


def test_locked_outputs_for_readout_all_and_eval_mode_is_deterministic():
    drop = LockedDropout(0.5).train()
    y = drop(torch.ones(4, 10, 32))
    assert torch.equal(y, y[:, :1].expand_as(y)) and (y == 0).any()
    step = nn.Dropout(0.5).train()(torch.ones(4, 10, 32))  # standard dropout: a new mask per step
    assert not torch.equal(step, step[:, :1].expand_as(step))
    torch.manual_seed(0)
    net = get_model("gru", input_shape=(1, 40), num_classes=10, hidden=8, readout="all", patch=2,
                    variational_dropout=0.4)
    x = torch.randn(5, 1, 40)
    assert not torch.allclose(net.train()(x), net(x))  # two training passes, two masks
    assert torch.equal(net.eval()(x), net(x))


def test_off_is_the_plain_recurrent_net():
    cfg = compose(["experiment=mnist1d_gru"])
    torch.manual_seed(0)
    plain = builders.build_network(cfg, (1, 40), 10)
    assert type(plain.rnn) is nn.GRU  # the fused cuDNN-able module, same parameter names as before
    assert all(k.startswith(("rnn.", "head.")) for k in plain.state_dict())
    x = torch.randn(4, 1, 40)
    assert torch.equal(plain.train()(x), plain.eval()(x))  # nothing random in training
    on = builders.build_network(compose(["experiment=mnist1d_gru", "regularizer=[augment,variational_dropout]"]),
                                (1, 40), 10)
    assert on.out_drop.p == 0.3 and not torch.equal(on.train()(x), on.eval()(x))


def test_bad_rate_and_models_without_the_option_are_refused():
    with pytest.raises(ConfigError, match=r"variational_dropout=1.5: must be a number in \[0, 1\)"):
        get_model("lstm", input_shape=(1, 40), num_classes=10, variational_dropout=1.5)
    cfg = compose(["model=mlp", "regularizer=[variational_dropout]"])
    with pytest.raises(ConfigError, match="variational_dropout"):
        builders.build_network(cfg, (1, 8, 8), 10)
