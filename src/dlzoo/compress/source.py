"""A trained pipeline run as the input of compression: its config, data, network and MLflow run, and
fine-tuning of a (pruned / quantization-aware) copy of its network with the run's own training setup."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torch import nn

from dlzoo.tracking.runs import RunInfo


@dataclass
class Source:
    run_dir: Path
    info: RunInfo  # run_info.json of the training run
    cfg: DictConfig  # its resolved config
    dm: Any  # its ArrayDataModule, set up
    net: nn.Module  # its best checkpoint's network, eval mode

    @property
    def name(self) -> str:
        return str(self.cfg.get("name") or self.run_dir.name)

    @property
    def run_id(self) -> str:
        return self.info["run_id"]


def load_compression_source(run_dir: str | Path, root: Path | None = None) -> Source:
    """The trained run in ``run_dir`` with its datamodule and best network (``builders.load_trained_network``),
    its config bound to the project at ``root`` (default: the one the command runs in)."""
    from dlzoo.builders import load_trained_network

    info, cfg, dm, net = load_trained_network(run_dir, root)
    return Source(Path(run_dir), info, cfg, dm, net)


def finetune(src: Source, net: nn.Module, epochs: int, lr: float, loss_fn: nn.Module | None = None) -> nn.Module:
    """Train ``net`` (in place) for ``epochs`` on the source's data with its task, optimizer type and
    regularizers at learning rate ``lr``, without a scheduler (and with ``loss_fn`` instead of the task's
    loss if given); returns it in eval mode."""
    import lightning.pytorch as pl

    from dlzoo import builders
    from dlzoo.training.accelerators import single_device_trainer

    if epochs <= 0:
        return net.eval()
    cfg = copy.deepcopy(src.cfg)
    cfg.task = "classify"
    cfg.optimizer.lr = lr
    cfg.scheduler = None
    pl.seed_everything(cfg.seed, verbose=False)
    task = builders.build_task(cfg, net, src.dm.num_classes)
    if loss_fn is not None:
        task.loss_fn = loss_fn
    # on one device of the run's accelerator; Lightning hands the network back on the CPU, where the
    # quantized kernels (and the latency measurements) run
    trainer = single_device_trainer(cfg.trainer, max_epochs=epochs, deterministic=cfg.trainer.get("deterministic", False))
    net.train()  # Lightning keeps the modules' mode: a net loaded for evaluation would fine-tune in eval mode
    trainer.fit(task, datamodule=src.dm)
    return net.eval()
