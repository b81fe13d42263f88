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

    The steps' figures are kept in plain lists and reduced once per epoch, not in a torchmetrics metric: a
    ``MulticlassAccuracy.update`` costs ~0.4 ms per step on CPU, a running ``bincount`` and sum a few tensor
    operations per step, where two (``detach``, ``argmax``) and four list appends are all a step pays here;
    ``nn.Module`` attribute assignment is slow too -- all of it adds up on small models
    (benchmarks/throughput.py)."""

    def on_train_epoch_start(self) -> None:
        # per step: the loss, the batch size, the predicted and the true classes (tensors kept as they are:
        # appending costs nothing on the device and syncs nothing), reduced once on the epoch's last step
        self._train_steps: dict = {"loss": [], "n": [], "pred": [], "target": []}

    def log_train(self, batch_idx: int, loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        if "_train_steps" not in self.__dict__:  # no epoch start (the step called outside a Trainer)
            self.on_train_epoch_start()
        steps = self._train_steps
        steps["loss"].append(loss.detach())
        steps["n"].append(target.shape[0])
        steps["pred"].append(logits.detach().argmax(1))
        steps["target"].append(target)
        # the epoch's last step (of its last batch, where a batch holds several: dlzoo.training.multistep)
        if (self._trainer is not None and batch_idx + 1 >= self.trainer.num_training_batches
                and getattr(self, "last_of_batch", True)):
            n = torch.tensor(steps["n"], dtype=torch.float32, device=loss.device)
            # batch_size=1: the figures are the epoch's already; Lightning's mean over logged values weights each
            # by its batch size, and v * b / b is not exactly v in float32 (the last batch's b would leak in)
            self.log("train/loss", (torch.stack(steps["loss"]).float() * n).sum() / n.sum(), on_step=False,
                     on_epoch=True, prog_bar=True, sync_dist=True, batch_size=1)
            # under DDP the mean of the ranks' accuracies (equal shards), not a pooled count
            classes = logits.shape[1]
            cm = torch.bincount(torch.cat(steps["target"]) * classes + torch.cat(steps["pred"]),
                                minlength=classes * classes).view(classes, classes)
            support, predicted = cm.sum(1), cm.sum(0)
            # torchmetrics' macro mean: per-class recall, over the classes that occur as target or prediction
            acc = (cm.diagonal() / support.clamp(min=1))[(support + predicted) > 0].mean()
            self.log("train/acc", acc, on_step=False, on_epoch=True, sync_dist=True, batch_size=1)
