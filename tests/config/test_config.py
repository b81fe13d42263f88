"""Hydra composition: every option of every group composes, validates and builds; bad input is refused."""

from __future__ import annotations

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from conftest import ROOT, compose
from dlzoo.config import validate
from dlzoo.errors import ConfigError

GROUPS = ["data", "model", "optimizer", "scheduler", "regularizer", "loss", "trainer", "logger", "callbacks", "experiment",
          "hparams_search"]


# Extra overrides so a group option meets a model/data it works with (the default model is LeNet-5 on images).
REGRESS = ["task=regress", "model=mlp", "data=diabetes", "loss=mse", "callbacks=regress"]
COMPATIBLE = {("data", "mnist1d"): ["model=mlp"], ("model", "cnn1d"): ["data=mnist1d"],
              ("data", "mnist1d_shuffled"): ["model=mlp"], ("data", "sort"): ["model=transformer_seq2seq", "task=seq2seq"],
              **{("model", m): ["data=mnist1d"] for m in ("rnn", "lstm", "gru", "transformer")},
              **{("model", m): ["data=sort", "task=seq2seq"] for m in ("transformer_seq2seq", "lstm_seq2seq", "nat_seq2seq")},
              ("data", "names"): ["model=lstm_seq2seq", "task=seq2seq"],
              ("data", "diabetes"): REGRESS, ("data", "synth1d"): [*REGRESS, "data=synth1d"],
              ("callbacks", "regress"): REGRESS, ("hparams_search", "diabetes_mlp"): ["experiment=diabetes_mlp"],
              ("hparams_search", "digits_mlp"): ["experiment=digits_mlp"],
              ("regularizer", "spatial_dropout"): ["data=mnist1d", "model=cnn1d"],
              ("regularizer", "variational_dropout"): ["data=mnist1d", "model=gru"],
              **{("loss", o): REGRESS for o in ("mse", "mae", "huber", "smooth_l1")},
              # no trainer here to count the steps of the run
              **{("scheduler", o): ["scheduler.total_steps=100"] for o in ("onecycle", "warmup_cosine", "warmup_linear")},
              # one-cycle / warmup schedules
              **{("experiment", e): ["scheduler.total_steps=100"]
                 for e in ("digits_alexnet", "digits_vgg16", "mnist1d_cnn1d", "mnist1d_cnn1d_teacher",
                           "mnist1d_shuffled_cnn1d", "seq2seq_transformer", "seq2seq_nat")},
              **{("regularizer", o): ["model=mlp"] for o in ("dropconnect", "layernorm", "batchnorm", "no_batchnorm")},
              **{("model", m): ["experiment=digits_vae", f"model={m}"] for m in ("ae", "vae", "cvae", "tvae")},
              ("model", "gan_mlp"): ["experiment=ring_gan"], ("data", "ring8"): ["experiment=ring_gan"]}
DETECT = ["data=digits_detect", "task=detect", "callbacks.model_checkpoint.monitor=val/map"]
COMPATIBLE.update({("data", "digits_detect"): [*DETECT, "model=yolo"], ("model", "yolo"): DETECT,
                   ("model", "rcnn"): DETECT})


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_has_options(group):
    assert options(group), f"conf/{group}/ is empty"


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_validates_and_builds(group, option, project):
    from dlzoo import builders

    override = f"{group}=[{option}]" if group == "regularizer" else f"{group}={option}"
    cfg = compose([override, *COMPATIBLE.get((group, option), [])])
    validate(cfg)
    dm = builders.build_datamodule(cfg)
    dm.setup()
    net = builders.build_network(cfg, dm.input_shape, dm.num_classes)
    task = builders.build_task(cfg, net, dm.num_classes)
    x, y = next(iter(dm.train_dataloader()))
    if cfg.task == "seq2seq":  # (src, tgt) token ids -> (B, T, vocab) teacher-forced logits
        assert task(x, y[:, :-1]).shape == (*y[:, :-1].shape, dm.num_classes)
    elif cfg.task == "autoencode":  # reconstruction logits of the input's shape
        assert task.eval()(x, y)[0].shape == x.shape
    elif cfg.task == "gan":  # latent codes -> samples of the data's shape
        assert task(torch.randn(len(x), task.net.latent_dim)).shape == x.shape
    elif cfg.task == "detect":  # images -> one {boxes, scores, labels} per image
        assert len(task.eval().predict(x[:2])) == 2
    else:
        assert task.eval()(x).shape == (x.shape[0], dm.num_classes)  # eval: logits only (no GoogLeNet aux heads)
    assert task.configure_optimizers() is not None
    assert builders.build_callbacks(cfg, project / "ckpt")


def test_several_regularizers_compose_together():
    cfg = compose(["regularizer=[l2,dropout]"])
    assert cfg.regularizer.weight_decay == pytest.approx(5e-4)
    assert cfg.regularizer.dropout == pytest.approx(0.3)


def test_params_yaml_is_the_composed_default():
    """params.yaml is what `make params` writes from conf/: the pipeline's lists, `prepare`, and an empty
    `overrides` section for every experiment (`dvc exp run -S` fills them in experiments, not on main)."""
    from dlzoo.configure import params_file

    composed = compose([])
    committed = OmegaConf.to_container(OmegaConf.load(ROOT / "params.yaml"))
    assert committed == params_file(), "params.yaml is stale: run `make params`"
    assert committed["pipeline"] == OmegaConf.to_container(composed.pipeline)
    assert set(committed["overrides"]) == {"main", *composed.pipeline.experiments, *composed.pipeline.extra_experiments}
    assert not any(committed["overrides"].values())


def test_an_experiments_job_config_does_not_change_when_the_matrix_does(tmp_path):
    """configure@<exp> writes --job configs (no pipeline lists): adding an experiment or a claim to the suite
    leaves every other train@<exp> stage's dependency as it was, so DVC re-trains nothing else."""
    from dlzoo.configure import main

    main(["--out", str(tmp_path / "a.yaml"), "--job", "experiment=digits_mlp"])
    main(["--out", str(tmp_path / "b.yaml"), "--job", "experiment=digits_mlp", "pipeline.experiments=[digits_mlp]",
          "pipeline.claims=[]"])
    assert (tmp_path / "a.yaml").read_text() == (tmp_path / "b.yaml").read_text()
    assert "pipeline" not in OmegaConf.load(tmp_path / "a.yaml") and "model" in OmegaConf.load(tmp_path / "a.yaml")


def test_composed_tree_has_no_dvc_breaking_interpolations():
    for f in (ROOT / "conf").rglob("*.yaml"):
        text = "\n".join(line.split("#", 1)[0] for line in f.read_text().splitlines())
        assert "${hydra:" not in text and "${oc.env:" not in text, f


def test_unknown_option_lists_valid_choices():
    with pytest.raises(ConfigCompositionException) as exc:
        compose(["model=nosuchnet"])
    msg = str(exc.value) + str(exc.value.__cause__)
    for name in ("mlp", "lenet5", "cnn1d"):
        assert name in msg


def test_unknown_registered_model_lists_registry():
    from dlzoo.models import get_model

    with pytest.raises(ConfigError, match="choose one of: .*lenet5.*mlp"):
        get_model("resnet9000", input_shape=(1, 8, 8), num_classes=10)


def test_unknown_model_key_is_named():
    from dlzoo.models import get_model

    with pytest.raises(ConfigError, match="widht"):
        get_model("mlp", input_shape=(1, 8, 8), num_classes=10, widht=3)


@pytest.mark.parametrize("override,key,allowed", [
    ("optimizer.lr=-0.1", "optimizer.lr", "> 0"),
    ("data.batch_size=0", "data.batch_size", ">= 1"),
    ("model.dropout=1.0", "model.dropout", "[0, 1)"),
    ("+regularizer.dropout=1.5", "regularizer.dropout", "[0, 1)"),
    ("trainer.max_epochs=0", "trainer.max_epochs", ">= 1"),
    ("prepare.val_fraction=1.2", "prepare.val_fraction", "(0, 1)"),
    ("callbacks.early_stopping.patience=-1", "callbacks.early_stopping.patience", ">= 0"),
])
def test_bad_values_are_refused_with_key_and_range(override, key, allowed):
    cfg = compose(["model=mlp", override])
    with pytest.raises(ConfigError) as exc:
        validate(cfg)
    assert key in str(exc.value) and allowed in str(exc.value)


def test_all_problems_reported_at_once():
    cfg = compose(["optimizer.lr=0", "data.batch_size=-3"])
    with pytest.raises(ConfigError) as exc:
        validate(cfg)
    assert "optimizer.lr" in str(exc.value) and "data.batch_size" in str(exc.value)
