"""Turn a composed config into the objects of one job: datamodule, network, task, callbacks.

Only entry points call these; the objects below them take plain arguments and never see the config tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlzoo.paths import project_root

# Model-config keys that describe the input the model needs rather than builder arguments.
INPUT_KEYS = ("name", "image_size", "aux_weight")
# Model-config keys applied after the network is built: `init` re-initialises every Linear/Conv weight
# (models.layers.INIT_SCHEMES; absent or null = each layer's PyTorch default).
POST_KEYS = ("init",)
# Regularizer keys that are model options: they override the model config's value (a model without the
# option refuses it, naming it).
MODEL_REGULARIZERS = ("dropout", "dropconnect", "spatial_dropout", "batchnorm", "layernorm", "variational_dropout")


def model_kwargs(cfg: DictConfig) -> dict[str, Any]:
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k not in INPUT_KEYS + POST_KEYS}
    reg = cfg.get("regularizer") or {}
    kwargs.update({k: reg[k] for k in MODEL_REGULARIZERS if reg.get(k) is not None})
    return kwargs


def build_datamodule(cfg: DictConfig):
    from dlzoo.accelerators import pin_memory

    dm = _datamodule(cfg)
    dm.pin_memory = pin_memory(cfg.get("trainer") or {})
    return dm


def _datamodule(cfg: DictConfig):
    from dlzoo.data.datamodule import ArrayDataModule
    from dlzoo.data.regression import RegressionDataModule

    if cfg.data.get("kind") == "seq2seq":
        from dlzoo.data.seq2seq import Seq2SeqDataModule

        return Seq2SeqDataModule(cfg.data.name, project_root() / "artifacts" / "splits", cfg.data.batch_size, cfg.seed,
                                 generate=OmegaConf.to_container(cfg.data.generate) if cfg.data.get("generate") else None)
    if cfg.data.get("kind") == "detection":
        from dlzoo.data.detection import DetectionDataModule

        return DetectionDataModule(cfg.data.name, project_root() / "artifacts" / "splits", cfg.data.batch_size, cfg.seed,
                                   fresh_canvases=cfg.data.get("fresh_canvases", False))
    image_size = cfg.model.get("image_size") or cfg.data.get("image_size")
    reg = cfg.get("regularizer") or {}
    cls = RegressionDataModule if cfg.get("task") == "regress" else ArrayDataModule
    return cls(cfg.data.name, project_root() / "artifacts" / "splits", batch_size=cfg.data.batch_size,
                           num_workers=cfg.data.num_workers, image_size=image_size, seed=cfg.seed,
                           standardize=cfg.data.get("standardize", True),
                           augment=reg.get("augment"), **_train_samples(cfg))


def _train_samples(cfg: DictConfig) -> dict:
    """``data.train_samples`` (absent or null: the whole training split), for the datasets that take it."""
    n = cfg.data.get("train_samples")
    return {"train_samples": n} if n else {}


def build_network(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int):
    from dlzoo.models import get_model
    from dlzoo.models.layers import init_weights

    net = get_model(cfg.model.name, input_shape=input_shape, num_classes=num_classes, **model_kwargs(cfg))
    if cfg.model.get("init"):
        init_weights(net, cfg.model.init)
    return net


def _partial(node: DictConfig | None, drop: tuple[str, ...] = ()):
    from hydra.utils import instantiate

    if not node or "_target_" not in node:
        return None
    node = OmegaConf.create({k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k not in drop})
    return instantiate(node)


def _training_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """Optimizer, LR schedule and weight penalties: the task arguments every task takes alike."""
    reg = cfg.get("regularizer") or {}
    return dict(
        optimizer=_partial(cfg.optimizer),
        scheduler=_partial(cfg.get("scheduler"), drop=("interval",)),
        scheduler_interval=(cfg.get("scheduler") or {}).get("interval", "epoch"),
        weight_decay=reg.get("weight_decay", cfg.optimizer.get("weight_decay", 0.0)) or 0.0,
        l1=reg.get("l1", 0.0) or 0.0,
        l2_penalty=reg.get("l2_penalty", 0.0) or 0.0,
    )


def _loss(cfg: DictConfig, default: str) -> tuple[str, dict]:
    loss_cfg = OmegaConf.to_container(cfg.get("loss") or {"name": default}, resolve=True)
    return loss_cfg.pop("name"), loss_cfg


def balanced_class_weights(cfg: DictConfig, num_classes: int) -> list[float]:
    """n / (C * n_c) from the training labels (scikit-learn's "balanced" class weights)."""
    import numpy as np

    from dlzoo.data.arrays import load_array
    from dlzoo.paths import SPLITS_FIX_HINT

    y = load_array(project_root() / "artifacts" / "splits" / cfg.data.name / "y_train.npy", SPLITS_FIX_HINT)
    counts = np.bincount(y.astype(np.int64), minlength=num_classes).clip(min=1)
    return (len(y) / (num_classes * counts)).tolist()


def _classify_task(cfg: DictConfig, net, num_classes: int):
    from dlzoo.tasks.classify import ClassificationTask
    from dlzoo.training.losses import build_loss

    label_smoothing = (cfg.get("regularizer") or {}).get("label_smoothing", 0.0) or 0.0
    loss_name, loss_cfg = _loss(cfg, "cross_entropy")
    loss_cfg.setdefault("label_smoothing", label_smoothing)  # every classification loss takes it
    if loss_cfg.get("class_weights") == "balanced":
        loss_cfg["class_weights"] = balanced_class_weights(cfg, num_classes)
    return ClassificationTask(
        net,
        num_classes=num_classes,
        label_smoothing=label_smoothing,
        loss_fn=build_loss(loss_name, "classify", **loss_cfg),
        aux_weight=cfg.model.get("aux_weight", 0.3),
        **_training_kwargs(cfg),
    )


def load_trained_network(run_dir):
    """(run_info, config, datamodule set up, network with the run's best weights in eval mode) of a training
    run folder: a distillation teacher here, a compression source in dlzoo.compress.source."""
    from pathlib import Path

    from dlzoo import runs

    run_dir = Path(run_dir)
    info = runs.load_run(run_dir)
    cfg = runs.load_config(run_dir)
    ckpt = runs.checkpoint(info, run_dir)
    dm = build_datamodule(cfg)
    dm.setup()
    net = build_network(cfg, dm.input_shape, dm.num_classes)
    net.load_state_dict(runs.net_state(ckpt))
    return info, cfg, dm, net.eval()


def _distill_task(cfg: DictConfig, net, num_classes: int):
    from dlzoo.errors import ConfigError
    from dlzoo.tasks.distill import DistillationTask

    kd = cfg.get("distill") or {}
    if not kd.get("teacher"):
        raise ConfigError("task=distill needs distill.teacher: a trained run folder, e.g. "
                          "+distill.teacher=artifacts/runs/mnist1d_cnn1d")
    base = _classify_task(cfg, net, num_classes)
    return DistillationTask(net, load_trained_network(kd.teacher)[3], temperature=kd.get("temperature", 4.0),
                            alpha=kd.get("alpha", 0.9), num_classes=num_classes,
                            optimizer=base.optimizer_factory, scheduler=base.scheduler_factory,
                            loss_fn=base.loss_fn, **{k: base.hparams[k] for k in
                                                     ("scheduler_interval", "weight_decay", "label_smoothing",
                                                      "aux_weight")})


def _seq2seq_task(cfg: DictConfig, net, num_classes: int):
    from dlzoo.tasks.seq2seq import Seq2SeqTask

    reg = cfg.get("regularizer") or {}
    return Seq2SeqTask(
        net,
        optimizer=_partial(cfg.optimizer),
        scheduler=_partial(cfg.get("scheduler"), drop=("interval",)),
        scheduler_interval=(cfg.get("scheduler") or {}).get("interval", "epoch"),
        weight_decay=reg.get("weight_decay", cfg.optimizer.get("weight_decay", 0.0)) or 0.0,
        label_smoothing=reg.get("label_smoothing", 0.0) or 0.0,
        **(OmegaConf.to_container(cfg.seq2seq, resolve=True) if cfg.get("seq2seq") else {}),
    )


def _regress_task(cfg: DictConfig, net, num_classes: int):
    from dlzoo.tasks.regress import RegressionTask
    from dlzoo.training.losses import build_loss

    _refuse_monitors(cfg, ("val/acc",), "add callbacks=regress (monitors val/loss), or start from "
                     "experiment=diabetes_mlp")
    loss_name, loss_cfg = _loss(cfg, "mse")
    return RegressionTask(net, loss_fn=build_loss(loss_name, "regress", **loss_cfg), **_training_kwargs(cfg))


def _refuse_monitors(cfg: DictConfig, unlogged: tuple[str, ...], fix: str, logged: tuple[str, ...] = ()) -> None:
    """A callback (checkpoint, early stopping) monitoring a metric the task does not log fails only after
    the first epoch: refuse it now. ``unlogged``: keys known to be missing; ``logged``: if given, the only
    keys (or null) that may be monitored."""
    for name in ("model_checkpoint", "early_stopping"):
        monitor = OmegaConf.select(cfg, f"callbacks.{name}.monitor", default=None)
        if monitor is not None and (monitor in unlogged or (logged and monitor not in logged)):
            from dlzoo.errors import ConfigError

            raise ConfigError(f"task={cfg.task} logs no {monitor} for callbacks.{name} to monitor: {fix}")


def _autoencode_task(cfg: DictConfig, net, num_classes: int):
    from dlzoo.tasks.generative import AutoencodeTask

    _refuse_monitors(cfg, ("val/acc",), "add callbacks=regress (monitors val/loss), or start from experiment=digits_vae")
    if cfg.data.get("standardize", True):
        from dlzoo.errors import ConfigError

        raise ConfigError("task=autoencode reads pixels as probabilities in [0, 1]: set data.standardize=false")
    return AutoencodeTask(net, **_training_kwargs(cfg), **OmegaConf.to_container(cfg.get("autoencode") or {}, resolve=True))


def _gan_task(cfg: DictConfig, net, num_classes: int):
    from dlzoo.tasks.generative import GANTask

    gan = OmegaConf.to_container(cfg.get("gan") or {}, resolve=True)
    _refuse_monitors(cfg, (), "set callbacks.<name>.monitor to val/modes or val/hq, or null (see experiment=ring_wgan)",
                     logged=("val/modes", "val/hq"))
    if cfg.data.name == "ring8":  # the modes that sample quality is measured against
        from dlzoo.data.synthetic import RING_STD, ring_centers

        gan.setdefault("centers", ring_centers().tolist())
        gan.setdefault("mode_std", RING_STD)
    return GANTask(net, optimizer=_partial(cfg.optimizer), **gan)


def _detect_task(cfg: DictConfig, net, num_classes: int):
    from dlzoo.tasks.detect import DetectionTask

    _refuse_monitors(cfg, ("val/acc",), "set callbacks.model_checkpoint.monitor=val/map, or start from "
                     "experiment=digits_yolo")
    detect = OmegaConf.to_container(cfg.detect, resolve=True) if cfg.get("detect") else {}
    return DetectionTask(net, num_classes, **_training_kwargs(cfg), **detect)


# cfg.task -> builder(cfg, net, num_classes) of the task's LightningModule. Tasks register here.
TASKS = {"classify": _classify_task, "regress": _regress_task, "distill": _distill_task, "seq2seq": _seq2seq_task,
         "autoencode": _autoencode_task, "gan": _gan_task, "detect": _detect_task}


def build_task(cfg: DictConfig, net, num_classes: int):
    if cfg.task not in TASKS:
        from dlzoo.errors import ConfigError

        raise ConfigError(f"task={cfg.task!r} is unknown; choose one of: {', '.join(sorted(TASKS))}")
    return TASKS[cfg.task](cfg, net, num_classes)


def build_callbacks(cfg: DictConfig, ckpt_dir: Path) -> list:
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import ModelCheckpoint

    from dlzoo.training.guards import FiniteLossGuard
    from dlzoo.training.history import SaveOnException

    callbacks = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:
            continue
        cb = instantiate(node)
        if isinstance(cb, ModelCheckpoint):
            cb.dirpath = str(ckpt_dir)
        callbacks.append(cb)
    # An interrupted or crashing run leaves its state behind (checkpoints/on_exception.ckpt).
    callbacks.append(SaveOnException(ckpt_dir))
    callbacks.append(FiniteLossGuard())
    return callbacks


def build_profiler(name: str | None, dirpath: Path):
    """Lightning's profiler named by ``trainer.profiler`` (simple / advanced / pytorch), writing its report to
    ``dirpath/<stage>-profile.txt``. Given the bare name, Lightning would write next to the logger's log_dir,
    which the MLflow logger does not have, and only print the report."""
    if not name:
        return None
    from lightning.pytorch import profilers

    classes = {"simple": profilers.SimpleProfiler, "advanced": profilers.AdvancedProfiler,
               "pytorch": profilers.PyTorchProfiler}
    return classes[name](dirpath=str(dirpath), filename="profile")


def count_parameters(net) -> int:
    return sum(p.numel() for p in net.parameters())


def example_input(net, input_shape: tuple[int, ...]) -> tuple:
    """The positional arguments of one forward pass on one sample (what the task's forward takes too)."""
    import inspect

    import torch

    needed = [p for p in inspect.signature(net.forward).parameters.values() if p.default is inspect.Parameter.empty]
    if hasattr(net, "example_input"):  # a generator takes latent codes
        return (net.example_input(1),)
    if len(needed) == 2:  # an encoder-decoder's forward(src, tgt_in) takes token ids of the input length
        return (torch.ones(1, *input_shape, dtype=torch.long),) * 2
    return (torch.zeros(1, *input_shape),)


def count_flops(net, input_shape: tuple[int, ...]) -> int:
    """Floating-point operations of one inference forward pass on one sample (eval mode, so GoogLeNet's
    auxiliary heads are left out), counted by torch.utils.flop_counter: 2 per multiply-add of convolutions
    and matrix products; elementwise ops (activations, norms, pooling) are not counted."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = net.training
    net.eval()
    example = example_input(net, input_shape)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(*example)
    finally:
        net.train(was_training)
    return int(counter.get_total_flops())
