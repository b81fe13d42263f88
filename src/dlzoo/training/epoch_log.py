"""Training metrics logged once per epoch instead of once per step.

``LightningModule.log`` costs about 2 ms per call on CPU (Lightning's result-collection bookkeeping, measured
with cProfile in benchmarks/throughput.py's setting), which is ~10% of a LeNet-5 step on digits. The epoch
means are the same when the task sums the loss itself and updates its accuracy metric per step, and logs both
on the epoch's last batch -- inside ``training_step``, so every callback's ``on_train_epoch_end`` sees them.
"""

from __future__ import annotations

import torch


class TrainEpochLogging:
    """Mixin for LightningModules: call ``log_train(batch_idx, loss, logits, target)`` from ``training_step``;
    ``train/loss`` (sample-weighted mean) and ``train/acc`` are logged on the last batch of the epoch (synced
    over DDP ranks). ``train/acc`` is macro-averaged over the classes that occur as target or prediction, as
    ``val/acc`` and ``test/acc`` (torchmetrics' ``MulticlassAccuracy`` default), so train-val gaps compare like
    with like.

    The running sums are plain tensors in a dict, not a torchmetrics metric: a ``MulticlassAccuracy.update``
    costs ~0.4 ms per step on CPU against well under 0.1 ms for one ``bincount`` call, and ``nn.Module``
    attribute assignment is slow too -- both add up on small models (benchmarks/throughput.py)."""

    def on_train_epoch_start(self) -> None:
        # loss: sum of loss x batch size; confusion: (C*C,) counts of (target, prediction) pairs
        self._train_sums: dict = {"loss": 0.0, "confusion": 0, "seen": 0}

    def log_train(self, batch_idx: int, loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        if "_train_sums" not in self.__dict__:  # no epoch start (the step called outside a Trainer)
            self.on_train_epoch_start()
        sums = self._train_sums
        n = target.shape[0]
        sums["loss"] = sums["loss"] + loss.detach() * n
        classes = logits.shape[1]
        pred = logits.detach().argmax(1)
        sums["confusion"] = sums["confusion"] + torch.bincount(target * classes + pred, minlength=classes * classes)
        sums["seen"] += n
        if self._trainer is not None and batch_idx + 1 >= self.trainer.num_training_batches:
            self.log("train/loss", sums["loss"] / sums["seen"], on_step=False, on_epoch=True, prog_bar=True,
                     sync_dist=True)
            # under DDP the mean of the ranks' accuracies (equal shards), not a pooled count
            cm = sums["confusion"].view(classes, classes)
            support, predicted = cm.sum(1), cm.sum(0)
            # torchmetrics' macro mean: per-class recall, over the classes that occur as target or prediction
            acc = (cm.diagonal() / support.clamp(min=1))[(support + predicted) > 0].mean()
            self.log("train/acc", acc, on_step=False, on_epoch=True, sync_dist=True)
