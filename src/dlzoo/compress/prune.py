"""Pruning: unstructured magnitude pruning (layer-wise or global, one shot or iterative with fine-tuning,
optionally with lottery-ticket rewinding) and structured pruning that physically removes neurons/filters.

Unstructured pruning uses ``torch.nn.utils.prune`` (masks + forward pre-hooks, made permanent at the end).
Structured pruning uses Torch-Pruning's dependency graph (``torch-pruning`` on PyPI, checked with torch
2.13): removing a filter of one conv also removes the matching input channels of the next layer, the
BatchNorm entries between them and the inputs of a Linear after a Flatten, for any traceable network, so
the MLP, CNN and later families share one code path.
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn.utils import prune

from dlzoo.errors import ConfigError

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """Every (module, "weight") of a Linear or convolution, the layers magnitude pruning works on."""
    return [(m, "weight") for m in model.modules() if isinstance(m, PRUNABLE)]


def step_amounts(schedule: Sequence[float]) -> list[float]:
    """Per-step amounts for torch.nn.utils.prune, whose ``amount`` is a fraction of the weights still
    unpruned: targets 0.5 -> 0.75 -> 0.9 of all weights become 0.5, 0.5, 0.6."""
    amounts, prev = [], 0.0
    for target in schedule:
        if not prev <= target < 1:
            raise ConfigError(f"compress.schedule={list(schedule)}: sparsities must rise and stay in [0, 1)")
        amounts.append(1 - (1 - target) / (1 - prev))
        prev = target
    return amounts


def prune_unstructured(model: nn.Module, amount: float, scope: str = "layer") -> None:
    """Zero the smallest-magnitude weights: ``amount`` of each layer's remaining weights (``layer``), or of
    all prunable weights ranked together (``global``, which lets layers end up with different sparsity)."""
    params = prunable(model)
    if scope == "layer":
        for module, name in params:
            prune.l1_unstructured(module, name, amount=amount)
    elif scope == "global":
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    else:
        raise ConfigError(f"compress.scope={scope!r}: choose one of ['global', 'layer']")


def rewind(model: nn.Module, init_state: dict[str, torch.Tensor]) -> None:
    """Lottery-ticket rewinding (Frankle & Carbin 2019): reset the surviving weights to their values at
    initialisation, keeping the masks. ``init_state`` is the state dict of the unpruned network at init."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(init_state[name.removesuffix("_orig")])


def make_permanent(model: nn.Module) -> nn.Module:
    for module, name in prunable(model):
        if prune.is_pruned(module) and hasattr(module, f"{name}_orig"):
            prune.remove(module, name)
    return model


def iterative_prune(model: nn.Module, schedule: Sequence[float], scope: str,
                    finetune: Callable[[nn.Module], nn.Module], init_state: dict | None = None,
                    on_step: Callable[[int, float, nn.Module], None] | None = None) -> nn.Module:
    """Prune a copy of ``model`` to each sparsity of ``schedule`` in turn, rewinding to ``init_state``
    (lottery ticket) when given, and fine-tune after each step; masks are made permanent at the end."""
    model = copy.deepcopy(model)
    for step, (target, amount) in enumerate(zip(schedule, step_amounts(schedule))):
        prune_unstructured(model, amount, scope)
        if init_state is not None:
            rewind(model, init_state)
        model = finetune(model)
        if on_step:
            on_step(step, target, model)
    return make_permanent(model)


def classifier(model: nn.Module, num_classes: int) -> nn.Module:
    """The output layer: the last Linear producing ``num_classes`` features (its outputs must stay)."""
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
    if not heads:
        raise ConfigError("structured pruning needs a Linear output layer with num_classes outputs")
    return heads[-1]


def shrink(model: nn.Module, example: torch.Tensor, num_classes: int, target_params: float,
           steps: int = 20, max_ratio: float = 0.9, global_pruning: bool = False) -> nn.Module:
    """A copy of ``model`` with whole neurons / filters removed (smallest L1 norm first, Li et al. 2017)
    until at most ``target_params`` of its parameters remain. The channel ratio grows in ``steps`` equal
    steps up to ``max_ratio``; parameters fall roughly with its square (each weight loses inputs and
    outputs), so half the parameters is reached at about 30% of the channels."""
    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    n0 = sum(p.numel() for p in model.parameters())
    pruner = tp.pruner.MetaPruner(model, example, importance=tp.importance.MagnitudeImportance(p=1),
                                  pruning_ratio=max_ratio, iterative_steps=steps, global_pruning=global_pruning,
                                  ignored_layers=[classifier(model, num_classes)])
    for _ in range(steps):
        if sum(p.numel() for p in model.parameters()) <= target_params * n0:
            break
        pruner.step()
    return model
