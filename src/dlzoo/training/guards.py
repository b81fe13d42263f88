"""Callbacks that stop a bad run early and loudly."""

from __future__ import annotations

import lightning.pytorch as pl
import torch


class FiniteLossGuard(pl.Callback):
    """Raise ``FloatingPointError`` as soon as the training loss is NaN or Inf.

    The job then ends with its MLflow run FAILED and the reason in the ``dlzoo.error`` tag; ``last.ckpt``
    still holds the last good epoch. The loss is checked every ``every_n_steps`` steps (default: the
    trainer's logging interval) so that GPU runs do not pay a host sync on every step.
    """

    def __init__(self, every_n_steps: int | None = None) -> None:
        self.every_n_steps = every_n_steps

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        every = self.every_n_steps or trainer.log_every_n_steps or 1
        if batch_idx % every and batch_idx != trainer.num_training_batches - 1:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss.detach()).all():
            # float16 weights and gradients without loss scaling overflow or underflow where float32 does not
            half = " or train in trainer.precision=16-mixed / bf16-mixed" if str(trainer.precision) == "16-true" else ""
            raise FloatingPointError(
                f"train/loss is {loss.item()} at epoch {trainer.current_epoch}, step {trainer.global_step}: training "
                f"stopped (lower optimizer.lr, add gradient clipping with trainer.gradient_clip_val{half}, or check "
                "the data)")
