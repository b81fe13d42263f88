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


def model_kwargs(cfg: DictConfig) -> dict[str, Any]:
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k not in INPUT_KEYS}
    reg = cfg.get("regularizer") or {}
    if reg.get("dropout") is not None:
        kwargs["dropout"] = reg["dropout"]
    return kwargs


def build_datamodule(cfg: DictConfig):
    from dlzoo.data.datamodule import ArrayDataModule

    image_size = cfg.model.get("image_size") or cfg.data.get("image_size")
    reg = cfg.get("regularizer") or {}
    return ArrayDataModule(cfg.data.name, project_root() / "artifacts" / "splits", batch_size=cfg.data.batch_size,
                           num_workers=cfg.data.num_workers, image_size=image_size, seed=cfg.seed,
                           standardize=cfg.data.get("standardize", True),
                           augment=reg.get("augment"))


def build_network(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int):
    from dlzoo.models import get_model

    return get_model(cfg.model.name, input_shape=input_shape, num_classes=num_classes, **model_kwargs(cfg))


def _partial(node: DictConfig | None, drop: tuple[str, ...] = ()):
    from hydra.utils import instantiate

    if not node or "_target_" not in node:
        return None
    node = OmegaConf.create({k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k not in drop})
    return instantiate(node)


def _classify_task(cfg: DictConfig, net, num_classes: int):
    from dlzoo.tasks.classify import ClassificationTask
    from dlzoo.training.losses import build_loss

    reg = cfg.get("regularizer") or {}
    weight_decay = reg.get("weight_decay", cfg.optimizer.get("weight_decay", 0.0)) or 0.0
    label_smoothing = reg.get("label_smoothing", 0.0) or 0.0
    loss_cfg = OmegaConf.to_container(cfg.get("loss") or {"name": "cross_entropy"}, resolve=True)
    loss_name = loss_cfg.pop("name")
    if loss_name == "cross_entropy":
        loss_cfg.setdefault("label_smoothing", label_smoothing)
    return ClassificationTask(
        net,
        num_classes=num_classes,
        optimizer=_partial(cfg.optimizer),
        scheduler=_partial(cfg.get("scheduler"), drop=("interval",)),
        scheduler_interval=(cfg.get("scheduler") or {}).get("interval", "epoch"),
        weight_decay=weight_decay,
        label_smoothing=label_smoothing,
        loss_fn=build_loss(loss_name, **loss_cfg),
        aux_weight=cfg.model.get("aux_weight", 0.3),
    )


# cfg.task -> builder(cfg, net, num_classes) of the task's LightningModule. Tasks register here.
TASKS = {"classify": _classify_task}


def build_task(cfg: DictConfig, net, num_classes: int):
    if cfg.task not in TASKS:
        from dlzoo.errors import ConfigError

        raise ConfigError(f"task={cfg.task!r} is unknown; choose one of: {', '.join(sorted(TASKS))}")
    return TASKS[cfg.task](cfg, net, num_classes)


def build_callbacks(cfg: DictConfig, ckpt_dir: Path) -> list:
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import ModelCheckpoint

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
    return callbacks


def count_parameters(net) -> int:
    return sum(p.numel() for p in net.parameters())


def count_flops(net, input_shape: tuple[int, ...]) -> int:
    """Floating-point operations of one inference forward pass on one sample (eval mode, so GoogLeNet's
    auxiliary heads are left out), counted by torch.utils.flop_counter: 2 per multiply-add of convolutions
    and matrix products; elementwise ops (activations, norms, pooling) are not counted."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(torch.zeros(1, *input_shape))
    finally:
        net.train(was_training)
    return int(counter.get_total_flops())
