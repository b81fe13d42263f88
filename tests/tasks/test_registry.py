"""Tasks are looked up by name and say themselves what the builders used to branch on: the datamodule they
train on, one forward pass's input, how they are built from a config."""

from __future__ import annotations

import pytest
import torch
from conftest import compose

from dlzoo import builders
from dlzoo.errors import ConfigError
from dlzoo.tasks.registry import get_task, list_tasks

TASKS = {"classify", "regress", "distill", "seq2seq", "autoencode", "gan", "detect"}


def test_every_task_is_found_by_name_and_an_unknown_one_lists_them():
    assert TASKS <= set(list_tasks())
    for name in TASKS:
        assert get_task(name).task_name == name
    with pytest.raises(ConfigError, match=r"task='clasify' is unknown; choose one of: .*classify.*detect"):
        builders.build_datamodule(compose(["task=clasify"]))


@pytest.mark.parametrize("experiment, datamodule", [
    ("digits_lenet5", "ArrayDataModule"), ("diabetes_mlp", "RegressionDataModule"),
    ("seq2seq_lstm", "Seq2SeqDataModule"), ("digits_yolo", "DetectionDataModule"),
    ("ring_wgan", "ArrayDataModule"), ("digits_vae", "ArrayDataModule")])
def test_the_task_picks_its_datamodule(experiment, datamodule):
    assert type(builders.build_datamodule(compose([f"experiment={experiment}"]))).__name__ == datamodule


@pytest.mark.parametrize("overrides, message", [
    (["data=names"], r"data=names is seq2seq data \(data.kind\), which task=classify cannot train on: use task=seq2seq"),
    (["data=digits_detect"], r"which task=classify cannot train on: use task=detect"),
    (["experiment=seq2seq_lstm", "data=digits"],
     r"task=seq2seq trains on seq2seq data and data=digits is image data .*data.kind is seq2seq"),
])
def test_data_of_another_kind_is_refused_with_the_fix(overrides, message):
    with pytest.raises(ConfigError, match=message):
        builders.build_datamodule(compose(overrides))


def test_example_input_is_what_the_task_feeds_its_network(splits_dir):
    for overrides, check in [
        (["experiment=seq2seq_lstm"], lambda ex: len(ex) == 2 and all(t.dtype == torch.long for t in ex)),  # src, tgt_in
        (["experiment=ring_wgan", "model.latent_dim=8"], lambda ex: len(ex) == 1 and ex[0].shape == (1, 8)),  # codes
        (["experiment=digits_lenet5"], lambda ex: len(ex) == 1 and ex[0].shape == (1, 1, 32, 32)),
    ]:
        cfg = compose([*overrides, f"paths.splits={splits_dir}"])  # the session's splits, from any folder
        dm = builders.build_datamodule(cfg)
        dm.setup()
        net = builders.build_network(cfg, dm.input_shape, dm.num_classes)
        example = builders.example_input(cfg, net, dm.input_shape)
        assert check(example), (overrides, [t.shape for t in example])
        assert builders.count_flops(net, example) > 0
        bf16 = builders.example_input(cfg, net, dm.input_shape, torch.bfloat16)
        assert all(t.dtype == (torch.bfloat16 if t.is_floating_point() else torch.long) for t in bf16)
