"""Lightning's ``LearningRateMonitor``, per optimizer step also when a Lightning step holds several.

Lightning's callback logs the learning rate in ``on_train_batch_start``, every ``trainer.log_every_n_steps``
Lightning steps. Under ``train.steps_per_execution=k`` (``dlzoo.training.multistep``) that would be once per k
optimizer steps, and a warmup or one-cycle schedule would no longer show. Here, in that mode, the rate is logged
before every ``log_every_n_steps``-th optimizer step, at that step's number -- the steps and values Lightning's
callback logs with one step per batch; otherwise it is Lightning's callback unchanged.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import LearningRateMonitor as _LightningMonitor


def _several_steps(pl_module: pl.LightningModule) -> bool:
    return not pl_module.automatic_optimization and getattr(pl_module, "multistep_k", 1) > 1


class LearningRateMonitor(_LightningMonitor):
    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        if not _several_steps(trainer.lightning_module):
            super().on_train_batch_start(trainer, *args, **kwargs)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        if (not _several_steps(pl_module) or self.logging_interval == "epoch"
                or (trainer.global_step + 1) % max(1, trainer.log_every_n_steps)):
            return
        stats = self._extract_stats(trainer, "step" if self.logging_interval is None else "any")
        for logger in trainer.loggers:
            # at the optimizer step's number, not mapped again (dlzoo.tracking.logger's step_map)
            getattr(logger, "log_metrics_at_step", logger.log_metrics)(stats, step=trainer.global_step)
