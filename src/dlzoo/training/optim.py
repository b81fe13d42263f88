"""Optimizer parameter groups."""

from __future__ import annotations

from torch import nn

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)


def param_groups(net: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights that decay, and biases/norm parameters that do not (standard practice, e.g.
    timm's ``param_groups_weight_decay``). With ``weight_decay == 0`` everything is in one group."""
    if not weight_decay:
        return [{"params": [p for p in net.parameters() if p.requires_grad]}]
    decay, no_decay = [], []
    for module in net.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            (no_decay if isinstance(module, _NORMS) or name.endswith("bias") or p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
