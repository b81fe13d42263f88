"""What tasks share: the steps of a task whose one ``_step(batch, stage)`` serves training, validation and test."""

from __future__ import annotations

from dlzoo.training.optim import configure_optimizers, penalised


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
