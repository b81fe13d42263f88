"""Optimizer parameter groups, explicit weight penalties (L1 / L2) and the optimizer + LR-scheduler set-up
shared by every task's ``configure_optimizers``."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from dlzoo.training.multistep import PLATEAU_MONITOR, total_steps

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)


def split_decay(net: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(weights that are regularised, biases and norm parameters that are not): standard practice, e.g. timm's
    ``param_groups_weight_decay``. Used by weight decay and by the explicit L1 / L2 penalties alike."""
    decay, no_decay = [], []
    for module in net.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            (no_decay if isinstance(module, _NORMS) or name.endswith("bias") or p.ndim <= 1 else decay).append(p)
    return decay, no_decay


def param_groups(net: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights that decay, and biases/norm parameters that do not. With ``weight_decay == 0``
    everything is in one group."""
    if not weight_decay:
        return [{"params": [p for p in net.parameters() if p.requires_grad]}]
    decay, no_decay = split_decay(net)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def weight_penalties(net: nn.Module, l1: float = 0.0, l2: float = 0.0) -> dict[str, torch.Tensor]:
    """The explicit penalty terms to add to the loss: ``l1_penalty`` = l1 * sum|w| and ``l2_penalty`` =
    l2 / 2 * sum w^2 over the weights of ``split_decay`` (biases and norm parameters excluded). Only the
    non-zero coefficients give a term.

    For plain SGD the L2 penalty's gradient l2 * w is exactly weight decay with the same coefficient; for
    adaptive optimizers (Adam) it is rescaled per parameter, which is why AdamW decouples the decay
    (Loshchilov & Hutter 2019)."""
    out: dict[str, torch.Tensor] = {}
    if not (l1 or l2):
        return out
    weights, _ = split_decay(net)
    if l1:
        out["l1_penalty"] = l1 * sum(w.abs().sum() for w in weights)
    if l2:
        out["l2_penalty"] = 0.5 * l2 * sum(w.pow(2).sum() for w in weights)
    return out


def penalised(module, loss: torch.Tensor, net: nn.Module, l1: float = 0.0, l2: float = 0.0) -> torch.Tensor:
    """``loss`` plus the ``weight_penalties`` of ``net``, each also logged as ``train/<name>`` by ``module``."""
    terms = weight_penalties(net, l1, l2)
    for name, value in terms.items():
        module.log(f"train/{name}", value, on_step=False, on_epoch=True)
    return loss + sum(terms.values()) if terms else loss


def configure_optimizers(module, net: nn.Module, optimizer: Callable, scheduler: Callable | None,
                         weight_decay: float, interval: str = "epoch"):
    """What a task's ``configure_optimizers`` returns: the optimizer over ``param_groups`` and, if any, the
    scheduler (``total_steps: null`` in its config is filled with the run's number of optimizer steps)."""
    from dlzoo.training.schedules import build_scheduler

    opt = optimizer(param_groups(net, weight_decay))
    if scheduler is None:
        return opt
    several = getattr(module, "multistep_k", 1) > 1  # several optimizer steps per batch (training.multistep)
    total = None
    if module._trainer is not None:
        if several:
            total = total_steps(module)
        else:
            total = module.trainer.estimated_stepping_batches
    sched = build_scheduler(scheduler, opt, total_steps=total, interval=interval,
                            max_epochs=module.trainer.max_epochs if module._trainer is not None else None)
    config = {"scheduler": sched, "interval": interval}
    # Lightning ignores (and warns about) a monitor under manual optimization, where the task steps its schedulers
    return {"optimizer": opt, "lr_scheduler": config if several else config | {"monitor": PLATEAU_MONITOR}}
