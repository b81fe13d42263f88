"""Classification task: one LightningModule for every classifier network (the network is injected)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import lightning.pytorch as pl
import torch
from torch import nn
from torchmetrics import SumMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from dlzoo.tasks.base import BuildContext, EvalOutputs, Task, predictions
from dlzoo.tasks.registry import register_task
from dlzoo.training.epoch_log import TrainEpochLogging
from dlzoo.training.multistep import MultiStep, dispatches_steps


def balanced_class_weights(y_train_file: Path, num_classes: int) -> list[float]:
    """n / (C * n_c) from the training labels (scikit-learn's "balanced" class weights)."""
    import numpy as np

    from dlzoo.data.arrays import load_array
    from dlzoo.paths import SPLITS_FIX_HINT

    y = load_array(y_train_file, SPLITS_FIX_HINT)
    counts = np.bincount(y.astype(np.int64), minlength=num_classes).clip(min=1)
    return (len(y) / (num_classes * counts)).tolist()


def confusion_plot(cm, output_dir: Path, dataset: str) -> Path:
    """The test confusion matrix drawn to ``output_dir/plots/confusion_matrix.png`` (its path returned: the
    caller logs it to its own MLflow run)."""
    from dlzoo.report.plots import confusion_matrix

    return confusion_matrix(cm, output_dir / "plots" / "confusion_matrix.png",
                            title=f"{dataset}: test confusion matrix (acc {cm.trace() / max(cm.sum(), 1):.3f})")


@register_task("classify")
class ClassificationTask(Task, MultiStep, TrainEpochLogging, pl.LightningModule):
    """Classifier training with accuracy/F1 metrics logged as ``train/*``, ``val/*``, ``test/*``.

    ``optimizer`` is a partial ``torch.optim`` constructor (Hydra ``_partial_``) that takes the parameter
    groups; ``scheduler`` a partial LR scheduler constructor or None, stepped per ``scheduler_interval``.
    ``loss_fn(logits, target)`` defaults to cross-entropy. A network may return ``(logits, *aux_logits)``
    in training mode (GoogLeNet's auxiliary classifiers): their losses count with ``aux_weight`` in
    training only. ``l1`` / ``l2_penalty`` add explicit weight penalties to the training loss (logged as
    ``train/l1_penalty`` / ``train/l2_penalty``).
    """

    # the figure a run of this task is ranked and reported by: exact share of correct labels
    score_key = "test/acc"
    registers = True

    def __init__(self, net: nn.Module, num_classes: int, optimizer: Callable, scheduler: Callable | None = None,
                 scheduler_interval: str = "epoch", weight_decay: float = 0.0, label_smoothing: float = 0.0,
                 loss_fn: nn.Module | None = None, aux_weight: float = 0.3, l1: float = 0.0, l2_penalty: float = 0.0):
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "loss_fn"])
        self.net = net
        self.loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.val_acc = MulticlassAccuracy(num_classes)
        self.test_acc = MulticlassAccuracy(num_classes)
        self.test_f1 = MulticlassF1Score(num_classes, average="macro")
        self.test_confmat = MulticlassConfusionMatrix(num_classes)
        self.test_count = SumMetric()  # samples tested, summed over DDP ranks (no sample seen twice)
        self.test_confusion = None

    @classmethod
    def from_config(cls, cfg, net: nn.Module, num_classes: int, context: BuildContext):
        from dlzoo.tasks.options import training_kwargs

        return cls(net, num_classes=num_classes, **cls.classifier_kwargs(cfg, num_classes, context),
                   **training_kwargs(cfg))

    @staticmethod
    def classifier_kwargs(cfg, num_classes: int, context: BuildContext) -> dict:
        """Label smoothing, the loss (``loss`` group; ``class_weights: balanced`` from the training labels) and
        the auxiliary heads' weight (``model.aux_weight``, GoogLeNet)."""
        from dlzoo.tasks.options import label_smoothing, loss_spec
        from dlzoo.training.losses import build_loss

        smoothing = label_smoothing(cfg)
        loss_name, loss_cfg = loss_spec(cfg, "cross_entropy")
        loss_cfg.setdefault("label_smoothing", smoothing)  # every classification loss takes it
        if loss_cfg.get("class_weights") == "balanced":
            loss_cfg["class_weights"] = balanced_class_weights(context.splits_dir / cfg.data.name / "y_train.npy",
                                                               num_classes)
        return dict(label_smoothing=smoothing, loss_fn=build_loss(loss_name, "classify", **loss_cfg),
                    aux_weight=cfg.model.get("aux_weight", 0.3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def raw_input_model(self, dm) -> tuple | None:
        """On an array dataset, the network behind the datamodule's preprocessing: it takes raw samples."""
        from dlzoo.data.datamodule import ArrayDataModule
        from dlzoo.data.regression import RegressionDataModule
        from dlzoo.tracking.model import raw_input_classifier

        if isinstance(dm, ArrayDataModule) and not isinstance(dm, RegressionDataModule):
            return raw_input_classifier(self.net, dm)
        return None

    def test_figures(self, out_dir: Path, title: str) -> list[Path]:
        """The confusion matrix of the last test loop."""
        return [confusion_plot(self.test_confusion, out_dir, title)] if self.test_confusion is not None else []

    def evaluation_outputs(self, dm, loader, split: str, out_dir: Path, title: str) -> EvalOutputs:
        """(true, arg-max predicted) class of every sample of ``loader``."""
        return EvalOutputs(*predictions(self, loader, lambda logits: logits.argmax(1)))

    def _step(self, batch):
        x, y = batch
        out = self(x)
        aux: tuple = ()
        if isinstance(out, (tuple, list)):
            out, *aux = out
        loss = self.loss_fn(out, y)
        if aux and self.training:
            loss = loss + self.hparams.aux_weight * sum(self.loss_fn(a, y) for a in aux)
        return loss, out, y

    @dispatches_steps
    def training_step(self, batch, batch_idx):
        if self.multistep_k > 1:  # train.steps_per_execution (dlzoo.training.multistep)
            return self.multistep(batch, batch_idx, self._training_loss)
        return self._training_loss(batch, batch_idx)

    def _training_loss(self, batch, batch_idx):
        """One step's training loss (what a subclass overrides, so that several steps per batch reach it)."""
        from dlzoo.training.optim import penalised

        loss, logits, y = self._step(batch)
        self.log_train(batch_idx, loss, logits, y)
        return penalised(self, loss, self.net, self.hparams.l1, self.hparams.l2_penalty)

    def validation_step(self, batch, batch_idx):
        loss, logits, y = self._step(batch)
        self.val_acc(logits, y)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("val/acc", self.val_acc, on_epoch=True, prog_bar=True)

    def test_step(self, batch, batch_idx):
        loss, logits, y = self._step(batch)
        self.test_acc(logits, y)
        self.test_f1(logits, y)
        self.test_confmat.update(logits, y)
        self.test_count.update(torch.ones_like(y, dtype=torch.float32))
        self.log("test/loss", loss, on_epoch=True, sync_dist=True)
        self.log("test/num_samples", self.test_count, on_epoch=True)
        self.log("test/acc", self.test_acc, on_epoch=True)
        self.log("test/f1_macro", self.test_f1, on_epoch=True)

    def on_test_epoch_start(self) -> None:
        self.test_confmat.reset()

    def on_test_epoch_end(self) -> None:
        # compute() syncs across DDP ranks, so every rank calls it here, inside the test loop
        self.test_confusion = self.test_confmat.compute().cpu().numpy()

    def configure_optimizers(self):
        from dlzoo.training.optim import configure_optimizers

        return configure_optimizers(self, self.net, self.optimizer_factory, self.scheduler_factory,
                                    self.hparams.weight_decay, self.hparams.scheduler_interval)
