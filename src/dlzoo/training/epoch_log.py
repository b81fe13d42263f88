"""Training metrics logged once per epoch instead of once per step.

``LightningModule.log`` costs about 2 ms per call on CPU (Lightning's result-collection bookkeeping, measured
with cProfile in benchmarks/throughput.py's setting), which is ~10% of a LeNet-5 step on digits. The epoch
means are the same when the task sums the loss itself and updates its accuracy metric per step, and logs both
on the epoch's last batch -- inside ``training_step``, so every callback's ``on_train_epoch_end`` sees them.
"""

from __future__ import annotations

import torch


class TrainEpochLogging:
    """Mixin for LightningModules with a ``train_acc`` torchmetrics metric: call ``log_train(batch_idx, loss,
    logits, target)`` from ``training_step``; ``train/loss`` (sample-weighted mean) and ``train/acc`` are logged
    on the last batch of the epoch (synced over DDP ranks)."""

    def on_train_epoch_start(self) -> None:
        self._train_loss_sum: torch.Tensor | None = None
        self._train_seen = 0
        self.train_acc.reset()

    def log_train(self, batch_idx: int, loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        n = target.shape[0]
        weighted = loss.detach() * n
        previous = getattr(self, "_train_loss_sum", None)  # None: first step of the epoch (or no trainer)
        self._train_loss_sum = weighted if previous is None else previous + weighted
        self._train_seen = getattr(self, "_train_seen", 0) + n
        self.train_acc.update(logits.detach(), target)
        if self._trainer is not None and batch_idx + 1 >= self.trainer.num_training_batches:
            self.log("train/loss", self._train_loss_sum / self._train_seen, on_step=False, on_epoch=True,
                     prog_bar=True, sync_dist=True)
            self.log("train/acc", self.train_acc.compute(), on_step=False, on_epoch=True)
