"""Knowledge distillation (Hinton et al. 2015): a student network learns from a frozen teacher's softened
outputs and the labels. Validation and test are the classification task's (cross-entropy, accuracy)."""

from __future__ import annotations

import torch
from torch import nn

from dlzoo.compress.distill import kd_loss
from dlzoo.tasks.classify import ClassificationTask


class DistillationTask(ClassificationTask):
    """``net`` is the student; ``teacher`` is kept frozen in eval mode (its dropout / BatchNorm statistics
    do not move) and sits in the checkpoint beside the student."""

    def __init__(self, net: nn.Module, teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.9, **kwargs):
        super().__init__(net, **kwargs)
        self.save_hyperparameters(ignore=["net", "teacher", "optimizer", "scheduler", "loss_fn"])
        self.teacher = teacher.eval().requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        with torch.no_grad():
            t = self.teacher(x)
            t = t[0] if isinstance(t, (tuple, list)) else t
        loss = kd_loss(logits, t, y, self.hparams.temperature, self.hparams.alpha)
        self.log_train(batch_idx, loss, logits, y)
        return loss
