"""Loss functions by name (the ``loss`` config group), from the lecture's loss-design section (001, lecture 2).

Every loss is called as ``loss(output, target)`` with the task's own targets: class indices for
classification (losses on distributions turn them into one-hot or smoothed targets here), real values
for regression (``output`` is (B, 1), ``target`` (B,)). Strings become modules here, once.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from dlzoo.errors import ConfigError


def soft_targets(y: torch.Tensor, num_classes: int, label_smoothing: float = 0.0) -> torch.Tensor:
    """Class indices (B,) -> target distribution (B, C): one-hot, smoothed towards uniform by ``label_smoothing``
    (Szegedy et al. 2016: (1-eps) * onehot + eps / C, as ``nn.CrossEntropyLoss(label_smoothing=eps)`` uses)."""
    onehot = F.one_hot(y, num_classes).float()
    return onehot * (1.0 - label_smoothing) + label_smoothing / num_classes


class BCEOneHot(nn.Module):
    """Binary cross-entropy on every class output (one sigmoid per class, one-vs-rest) against one-hot targets;
    the lecture's binary CE applied per class. Targets may be smoothed."""

    def __init__(self, label_smoothing: float = 0.0, reduction: str = "mean"):
        super().__init__()
        self.label_smoothing, self.reduction = label_smoothing, reduction

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # logits (B, C), y (B,)
        target = soft_targets(y, logits.shape[1], self.label_smoothing)
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(1)  # (B,)
        return loss.mean() if self.reduction == "mean" else loss


class KLDivergence(nn.Module):
    """D_KL(P || Q) with P the (one-hot or smoothed) target distribution and Q = softmax(logits).

    With one-hot targets it equals cross-entropy (P's entropy is 0); with smoothing it differs from it by
    P's entropy, a constant, so it trains the same but reads 0 at a perfect fit."""

    def __init__(self, label_smoothing: float = 0.0, reduction: str = "mean"):
        super().__init__()
        self.label_smoothing, self.reduction = label_smoothing, reduction

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        target = soft_targets(y, logits.shape[1], self.label_smoothing)
        loss = F.kl_div(F.log_softmax(logits, 1), target, reduction="none").sum(1)  # (B,)
        return loss.mean() if self.reduction == "mean" else loss


class WeightedCrossEntropy(nn.CrossEntropyLoss):
    """Class-weighted cross-entropy: w_c * CE, normalised by the weights of the batch (PyTorch's convention).
    ``class_weights`` is a list of C numbers (``balanced`` is resolved from the training labels by the builder)."""

    def __init__(self, class_weights: Sequence[float], label_smoothing: float = 0.0, reduction: str = "mean"):
        super().__init__(weight=torch.tensor(list(class_weights), dtype=torch.float32),
                         label_smoothing=label_smoothing, reduction=reduction)


class Regression(nn.Module):
    """Adapts an elementwise regression loss to (B, 1) outputs and (B,) targets."""

    def __init__(self, fn: Callable[..., torch.Tensor], reduction: str = "mean", **kwargs):
        super().__init__()
        self.fn, self.reduction, self.kwargs = fn, reduction, kwargs

    def forward(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fn(pred.reshape(y.shape), y.to(pred.dtype), reduction=self.reduction, **self.kwargs)

    def extra_repr(self) -> str:
        return f"{self.fn.__name__}, {self.kwargs}"


class Clipped(nn.Module):
    """The lecture's clipped loss: mean_i min(loss_i, C). Samples whose loss exceeds C give no gradient, so
    extreme errors (outliers, label noise) cannot dominate training."""

    def __init__(self, base: nn.Module, max_loss: float):
        super().__init__()
        if max_loss <= 0:
            raise ConfigError(f"loss.max_loss={max_loss!r}: must be a number > 0")
        self.base, self.max_loss = base, max_loss

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.base(output, target).clamp(max=self.max_loss).mean()


def _huber(delta: float = 1.0, **kw) -> nn.Module:
    if delta <= 0:
        raise ConfigError(f"loss.delta={delta!r}: must be a number > 0")
    return Regression(F.huber_loss, delta=delta, **kw)


def _smooth_l1(beta: float = 1.0, **kw) -> nn.Module:
    # SmoothL1(beta) = Huber(delta=beta) / beta: the same shape, the quadratic part normalised to slope 1
    return Regression(F.smooth_l1_loss, beta=beta, **kw)


CLASSIFY, REGRESS = "classify", "regress"
# name -> (factory, tasks it fits). Factories take ``reduction`` (``clipped`` needs per-sample losses).
LOSSES: dict[str, tuple[Callable[..., nn.Module], tuple[str, ...]]] = {
    "cross_entropy": (nn.CrossEntropyLoss, (CLASSIFY,)),
    "weighted_cross_entropy": (WeightedCrossEntropy, (CLASSIFY,)),
    "bce": (BCEOneHot, (CLASSIFY,)),
    "kl_div": (KLDivergence, (CLASSIFY,)),
    "mse": (lambda **kw: Regression(F.mse_loss, **kw), (REGRESS,)),
    "mae": (lambda **kw: Regression(F.l1_loss, **kw), (REGRESS,)),
    "huber": (_huber, (REGRESS,)),
    "smooth_l1": (_smooth_l1, (REGRESS,)),
}


def build_loss(name: str, task: str = CLASSIFY, **kwargs) -> nn.Module:
    """``build_loss("huber", "regress", delta=2.0)``; ``build_loss("clipped", base="mse", max_loss=4.0)``."""
    if name == "clipped":
        max_loss = kwargs.pop("max_loss", None)
        if max_loss is None:
            raise ConfigError("loss=clipped needs loss.max_loss (the C in min(loss, C))")
        base = kwargs.pop("base", None) or ("cross_entropy" if task == CLASSIFY else "mse")
        if base == "clipped":
            raise ConfigError("loss.base=clipped: choose the loss to clip, e.g. mse or cross_entropy")
        return Clipped(build_loss(base, task, reduction="none", **kwargs), float(max_loss))
    if name not in LOSSES:
        raise ConfigError(f"loss.name={name!r} is unknown; choose one of: {', '.join(sorted([*LOSSES, 'clipped']))}")
    factory, tasks = LOSSES[name]
    if task not in tasks:
        fits = sorted(n for n, (_, t) in LOSSES.items() if task in t)
        raise ConfigError(f"loss={name} does not fit task={task}; choose one of: {', '.join([*fits, 'clipped'])}")
    if task == REGRESS:
        kwargs.pop("label_smoothing", None)
    return factory(**kwargs)
