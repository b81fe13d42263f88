"""The CNN family of the lectures: each architecture has the structure its paper describes."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from dlzoo.builders import count_flops, count_parameters
from dlzoo.errors import ConfigError
from dlzoo.models import get_model
from dlzoo.tasks.classify import ClassificationTask

DIGITS = (1, 8, 8)


def _convs(net: nn.Module) -> list[nn.Conv2d]:
    return [m for m in net.modules() if isinstance(m, nn.Conv2d)]


def test_googlenet_aux_heads_count_in_training_only():
    torch.manual_seed(0)
    net = get_model("googlenet", input_shape=DIGITS, num_classes=10, width=0.125)
    calls: list[str] = []
    outputs: dict[str, torch.Tensor] = {}

    def record(name: str):
        def hook(module, inputs, output) -> None:  # returns None: the output is left unchanged
            calls.append(name)
            outputs[name] = output

        return hook

    for name, module in [*net.aux_heads.items(), ("main", net.head)]:
        module.register_forward_hook(record(name))
    task = ClassificationTask(net, 10, functools.partial(torch.optim.SGD, lr=0.1), aux_weight=0.3)
    x, y = torch.randn(4, *DIGITS), torch.randint(0, 10, (4,))
    ce = nn.functional.cross_entropy

    task.train()
    loss, logits, _ = task._step((x, y))
    assert sorted(calls) == ["4a", "4d", "main"]  # both auxiliary classifiers ran
    expected = ce(outputs["main"], y) + 0.3 * (ce(outputs["4a"], y) + ce(outputs["4d"], y))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.aux_heads.parameters())

    calls.clear()
    task.eval()
    with torch.no_grad():
        loss_eval, logits_eval, _ = task._step((x, y))
    assert calls == ["main"]  # the auxiliary heads never run outside training
    assert logits_eval.shape == (4, 10)
    assert loss_eval.item() == pytest.approx(ce(outputs["main"], y).item(), rel=1e-5)


def test_googlenet_inception_concatenates_four_branches():
    from dlzoo.models.googlenet import BLOCKS, Inception

    block = Inception(192, *dict(e for e in BLOCKS if e != "M")["3a"])
    assert block.out_chans == 64 + 128 + 32 + 32  # the paper's 256 channels of 3a
    assert block(torch.randn(1, 192, 8, 8)).shape == (1, 256, 8, 8)
    assert [c.kernel_size for c in _convs(block.branch5)] == [(1, 1), (5, 5)]  # 1x1 reduction before the 5x5
    net = get_model("googlenet", input_shape=DIGITS, num_classes=10, width=0.125, aux=False)
    assert len(net.aux_heads) == 0 and not isinstance(net.train()(torch.randn(2, *DIGITS)), tuple)


def test_resnet_projection_shortcuts_only_where_the_shape_changes():
    net = get_model("resnet18", input_shape=DIGITS, num_classes=10)
    kinds = [type(b.shortcut).__name__ for stage in net.stages for b in stage]
    # stage 1 keeps the shape; stages 2-4 halve the resolution and double the channels in their first block
    assert kinds == ["Identity", "Identity", "Sequential", "Identity", "Sequential", "Identity", "Sequential", "Identity"]
    proj = net.stages[1][0].shortcut[0]
    assert proj.kernel_size == (1, 1) and proj.stride == (2, 2)


def test_plain_net_is_resnet_without_shortcuts():
    res, plain = (get_model(n, input_shape=DIGITS, num_classes=10) for n in ("resnet18", "plain18"))
    assert all(b.shortcut is None for stage in plain.stages for b in stage)
    proj_params = sum(count_parameters(b.shortcut) for stage in res.stages for b in stage)
    assert count_parameters(res) - count_parameters(plain) == proj_params > 0
    depth = sum(1 for m in _convs(plain)) + 1  # convs + the classifier
    assert depth == 18


def test_resnet50_bottleneck_and_resnext_groups():
    net = get_model("resnet50", input_shape=DIGITS, num_classes=10, width=1.0)
    block = net.stages[0][0]
    assert [c.kernel_size for c in _convs(block.body)] == [(1, 1), (3, 3), (1, 1)]
    assert block.body[2][0].out_channels == 4 * block.body[0][0].out_channels  # expansion 4
    resnext = get_model("resnet50", input_shape=DIGITS, num_classes=10, width=1.0, groups=32, base_width=4)
    assert resnext.stages[0][0].body[1][0].groups == 32


def test_dilate_last_keeps_the_resolution():
    x = torch.randn(2, 1, 16, 16)
    for name in ("resnet18", "mobilenet_v1"):
        plain = get_model(name, input_shape=(1, 16, 16), num_classes=10)
        dilated = get_model(name, input_shape=(1, 16, 16), num_classes=10,
                            **({"dilate_last": True} if name == "resnet18" else {"dilation": 2}))
        feats = (plain.stages(plain.stem(x)) if name == "resnet18" else plain.features(x))
        feats_d = (dilated.stages(dilated.stem(x)) if name == "resnet18" else dilated.features(x))
        assert feats_d.shape[-1] == 2 * feats.shape[-1], name
        assert any(c.dilation == (2, 2) for c in _convs(dilated))
        assert count_parameters(plain) == count_parameters(dilated)


@pytest.mark.parametrize("name,convs", [("vgg11", 8), ("vgg13", 10), ("vgg16", 13), ("vgg19", 16)])
def test_vgg_variants_from_one_table(name, convs):
    net = get_model(name, input_shape=(1, 32, 32), num_classes=10)
    assert len(_convs(net)) == convs and all(c.kernel_size == (3, 3) for c in _convs(net))
    assert len(_convs(net)) + 3 == int(name[3:])  # + three fully connected layers = the name's depth
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    plain = get_model(name, input_shape=(1, 32, 32), num_classes=10, batchnorm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())


def test_alexnet_lrn_overlapping_pools_and_groups():
    net = get_model("alexnet", input_shape=DIGITS, num_classes=10)
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in net.modules()) == 2
    pools = [m for m in net.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 3 and all(p.kernel_size > p.stride for p in pools)  # overlapping
    grouped = get_model("alexnet", input_shape=DIGITS, num_classes=10, groups=2)
    assert [c.groups for c in _convs(grouped)] == [1, 2, 1, 2, 2]
    assert count_parameters(_convs(grouped)[1]) < count_parameters(_convs(net)[1])


def test_densenet_growth_and_compression():
    net = get_model("densenet", input_shape=DIGITS, num_classes=10, block_config=[3, 3], growth_rate=4,
                    compression=0.5)
    x = torch.randn(1, *DIGITS)
    widths = []
    for layer in net.features:
        x = layer(x)
        widths.append(x.shape[1])
    # stem 2k = 8; +k per dense layer -> 20; transition keeps theta = 0.5 -> 10; +3k -> 22
    assert widths[:4] == [8, 12, 16, 20] and 10 in widths and widths[-1] == 22
    with pytest.raises(ConfigError, match="compression"):
        get_model("densenet", input_shape=DIGITS, num_classes=10, compression=1.5)


def test_mobilenet_depthwise_separable_is_cheaper():
    net = get_model("mobilenet_v1", input_shape=DIGITS, num_classes=10)
    depthwise = [c for c in _convs(net) if c.groups > 1]
    assert depthwise and all(c.groups == c.in_channels == c.out_channels for c in depthwise)
    block = net.features[2]  # 16 -> 32 channels
    full = nn.Conv2d(block[0][0].in_channels, block[1][0].out_channels, 3, padding=1, bias=False)
    assert count_parameters(block) < count_parameters(full) / 3
    shallow = get_model("mobilenet_v1", input_shape=DIGITS, num_classes=10, repeats=1)  # the paper's 5x stack -> 1x
    assert len(shallow.features) == len(net.features) - 4
    assert count_parameters(shallow) < count_parameters(net) and shallow(torch.randn(2, *DIGITS)).shape == (2, 10)
    with pytest.raises(ConfigError, match="repeats"):
        get_model("mobilenet_v1", input_shape=DIGITS, num_classes=10, repeats=-1)
    v2 = get_model("mobilenet_v2", input_shape=DIGITS, num_classes=10)
    residuals = [m for m in v2.modules() if type(m).__name__ == "InvertedResidual" and m.residual]
    assert residuals and isinstance(residuals[0].body[-1][-1], nn.BatchNorm2d)  # linear bottleneck: no ReLU


def test_flops_of_lenet5_match_the_hand_count():
    net = get_model("lenet5", input_shape=(1, 32, 32), num_classes=10)
    # multiply-adds: C1 28*28*6*25 + C3 10*10*16*(6*25) + F5 400*120 + F6 120*84 + out 84*10; 2 FLOPs each
    macs = 28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10
    assert count_flops(net, (torch.zeros(1, 1, 32, 32),)) == 2 * macs
    assert net.training  # the count leaves the mode as it was


def test_width_multiplier_scales_channels():
    thin, wide = (get_model("resnet18", input_shape=DIGITS, num_classes=10, width=w) for w in (0.25, 0.5))
    assert _convs(wide)[0].out_channels == 2 * _convs(thin)[0].out_channels
    with pytest.raises(ConfigError, match=r"\(C, H, W\)"):
        get_model("vgg11", input_shape=(1, 40), num_classes=10)


def test_report_section_shows_accuracy_params_flops_and_epoch_time(tmp_path):
    import json

    from dlzoo.report.cli import build

    rows = [{"name": "digits_resnet18", "model": "resnet18", "dataset": "digits", "test/acc": 0.9889,
             "num_params": 701178, "flops": 4346368, "epoch_time_s": 1.234, "epochs": 15},
            {"name": "digits_vgg16", "model": "vgg16", "dataset": "digits", "test/acc": 0.9917,
             "num_params": 315954, "flops": 952320, "epoch_time_s": 0.5, "epochs": 30},
            # not classifiers: their own sections show them
            {"name": "digits_yolo", "model": "yolo", "dataset": "digits_detect", "task": "detect", "test/map": 0.7,
             "num_params": 10, "flops": 10, "epochs": 10},
            {"name": "ring_wgan", "model": "gan_mlp", "dataset": "ring8", "task": "gan", "test/acc": 0.5,
             "num_params": 10, "flops": 10, "epochs": 10}]
    (tmp_path / "metrics").mkdir()
    for r in rows:
        (tmp_path / "metrics" / f"{r['name']}.json").write_text(json.dumps(r))
    build(tmp_path / "metrics", tmp_path / "reports")
    text = (tmp_path / "reports" / "README.md").read_text()
    section = text[text.index("## Architectures"):]
    section = section[:section.find("\n## ", 3) if "\n## " in section[3:] else None]
    assert "digits_yolo" not in section and "ring_wgan" not in section and "### ring8" not in section
    assert "| digits_vgg16 | vgg16 | 0.9917 | 315,954 | 0.95 | 0.50 | 30 |" in section
    assert section.index("digits_vgg16") < section.index("digits_resnet18")  # best first
    assert (tmp_path / "reports" / "architectures_digits.png").stat().st_size > 0
