"""What tasks share: the steps of a task whose one ``_step(batch, stage)`` serves training, validation and test."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from dlzoo.training.optim import configure_optimizers, penalised


@dataclass
class BuildContext:
    """What building a task may need besides its config: where the prepared splits are (``splits_dir``), and
    how to load a trained run's network by its run folder (``load_network``: a distillation teacher)."""

    splits_dir: Path
    load_network: Callable[[str], nn.Module]


class Task:
    """What a task class says about itself, so that nothing outside ``tasks/`` branches on the task's name.

    - ``score_key``: the figure its runs are ranked and reported by;
    - ``datamodule``: the kind of datamodule it trains on (``array``: image, sequence or tabular samples with
      class labels; ``regression``; ``seq2seq``; ``detection``), which ``data.kind`` must agree with for the
      last two;
    - ``from_config(cfg, net, num_classes, context)``: the LightningModule of a composed config;
    - ``example_input(net, input_shape)``: the positional arguments of one forward pass on one sample;
    - ``evaluation_outputs(...)`` (instance method): what the test evaluation writes besides the test loop's
      metrics (``EvalOutputs``);
    - ``test_figures(out_dir, title)``: plots of the last test loop, logged to the run (a confusion matrix);
    - ``registers``: whether a tested run's model goes to the MLflow Model Registry, ranked by ``score_key``
      (higher is better);
    - ``restore_from_registry(dm)``: what a registered model (the network only) does not carry, restored from
      the datamodule once its weights are loaded (a regressor's target scaling);
    - ``raw_input_model(dm)``: the network with the datamodule's preprocessing, logged as the run's MLflow
      Model so that it takes raw samples (``tracking.model``), or None to log the bare network.

    ``task_name`` is set by ``@register_task(name)`` (``tasks.registry``).
    """

    task_name: str
    score_key: str = "test/acc"
    datamodule: str = "array"
    registers: bool = False

    def test_figures(self, out_dir: Path, title: str) -> list[Path]:
        return []

    def restore_from_registry(self, dm) -> None:
        return None

    def raw_input_model(self, dm) -> tuple | None:
        return None

    @classmethod
    def from_config(cls, cfg, net: nn.Module, num_classes: int, context: BuildContext):
        raise NotImplementedError(f"{cls.__name__} does not say how it is built from a config")

    @staticmethod
    def example_input(net: nn.Module, input_shape: tuple[int, ...]) -> tuple:
        return (torch.zeros(1, *input_shape),)


@dataclass
class EvalOutputs:
    """What a task's ``evaluation_outputs(dm, loader, split, out_dir, title)`` hands the test evaluation
    (dlzoo.evaluate), computed on the task's device after its test pass over ``loader``: ``labels`` and
    ``preds``, the (actual, predicted) pairs of predictions.csv and the confusion plot (per sample, token, box
    or generated point); ``metrics``, more figures logged to the MLflow run and written to the metrics JSON;
    ``extra``, written to the metrics JSON only (a plot's path, a length curve); ``figures``, plots logged to
    the run under ``plots/``."""

    labels: np.ndarray
    preds: np.ndarray
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)


@torch.no_grad()
def predictions(task, loader, reduce) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predictions) of a task over a loader of (x, y) batches: ``reduce(task(x))`` per batch, e.g. the
    arg-max class of the logits."""
    preds = torch.cat([reduce(task(x.to(task.device))) for x, _ in loader]).cpu().numpy()
    return np.concatenate([y.numpy() for _, y in loader]), preds


class StagedSteps:
    """Mixin for a LightningModule with ``net``, ``optimizer_factory``, ``scheduler_factory``, a
    ``_step(batch, stage) -> loss`` and the hyperparameters ``l1``, ``l2_penalty``, ``weight_decay``,
    ``scheduler_interval``: the three steps (the training loss with the L1 / L2 penalties of the regularizer
    config) and the optimizer and scheduler."""

    def training_step(self, batch, batch_idx):
        return penalised(self, self._step(batch, "train"), self.net, self.hparams.l1, self.hparams.l2_penalty)

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        return configure_optimizers(self, self.net, self.optimizer_factory, self.scheduler_factory,
                                    self.hparams.weight_decay, self.hparams.scheduler_interval)
