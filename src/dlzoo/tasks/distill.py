"""Knowledge distillation (Hinton et al. 2015): a student network learns from a frozen teacher's softened
outputs and the labels. Validation and test are the classification task's (cross-entropy, accuracy)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlzoo.tasks.base import BuildContext
from dlzoo.tasks.classify import ClassificationTask
from dlzoo.tasks.registry import register_task


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
            temperature: float, alpha: float) -> torch.Tensor:
    """alpha * T^2 * KL(softmax(z_t/T) || softmax(z_s/T)) + (1 - alpha) * CE(z_s, y), batch mean.

    The T^2 factor keeps the soft term's gradients on the scale of the hard term's as T changes
    (Hinton et al. 2015, section 2)."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)  # (B, C)
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=1)  # (B, C)
    kl = F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean")
    return alpha * temperature ** 2 * kl + (1 - alpha) * F.cross_entropy(student_logits, target)


@register_task("distill")
class DistillationTask(ClassificationTask):
    """``net`` is the student; ``teacher`` is kept frozen in eval mode (its dropout / BatchNorm statistics
    do not move) and sits in the checkpoint beside the student."""

    @classmethod
    def from_config(cls, cfg, net: nn.Module, num_classes: int, context: BuildContext):
        from dlzoo.errors import ConfigError
        from dlzoo.tasks.options import optimizer_kwargs

        kd = cfg.get("distill") or {}
        if not kd.get("teacher"):
            raise ConfigError("task=distill needs distill.teacher: a trained run folder, e.g. "
                              "+distill.teacher=artifacts/runs/mnist1d_cnn1d")
        kwargs = cls.classifier_kwargs(cfg, num_classes, context)
        return cls(net, context.load_network(kd.teacher), temperature=kd.get("temperature", 4.0),
                   alpha=kd.get("alpha", 0.9), num_classes=num_classes, **kwargs, **optimizer_kwargs(cfg))

    def __init__(self, net: nn.Module, teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.9, **kwargs):
        super().__init__(net, **kwargs)
        self.save_hyperparameters(ignore=["net", "teacher", "optimizer", "scheduler", "loss_fn"])
        self.teacher = teacher.eval().requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    def _training_loss(self, batch, batch_idx):  # one step's loss (ClassificationTask.training_step calls it)
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
