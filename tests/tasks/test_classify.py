"""The classification LightningModule's loss handling."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from dlzoo.tasks.classify import ClassificationTask


class WithAux(nn.Module):
    """Returns (logits, aux_logits) in training mode, like GoogLeNet; logits only in eval mode."""

    def __init__(self):
        super().__init__()
        self.main, self.aux = nn.Linear(4, 3), nn.Linear(4, 3)

    def forward(self, x):
        return (self.main(x), self.aux(x)) if self.training else self.main(x)


def test_aux_losses_count_in_training_only():
    torch.manual_seed(0)
    net = WithAux()
    task = ClassificationTask(net, 3, functools.partial(torch.optim.SGD, lr=0.1), aux_weight=0.3)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    ce = nn.functional.cross_entropy
    task.train()
    loss, logits, _ = task._step((x, y))
    assert loss.item() == pytest.approx((ce(net.main(x), y) + 0.3 * ce(net.aux(x), y)).item(), rel=1e-6)
    task.eval()
    loss_eval, _, _ = task._step((x, y))
    assert loss_eval.item() == pytest.approx(ce(net.main(x), y).item(), rel=1e-6)


def test_weight_decay_skips_biases_and_norms():
    from dlzoo.training.optim import param_groups

    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    decay, no_decay = param_groups(net, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(net[0].weight), id(net[2].weight)}
    assert len(no_decay["params"]) == 4  # two biases + BN weight and bias


def test_every_task_names_the_figure_it_is_ranked_by():
    """A task owns its score key (what `dlzoo.train` prints and records in run_info.json), so adding a task does
    not mean adding a branch to the entry points."""
    import importlib
    import inspect
    import pkgutil

    import lightning.pytorch as pl

    import dlzoo.tasks

    tasks = [cls for info in pkgutil.iter_modules(dlzoo.tasks.__path__)
             for _, cls in inspect.getmembers(importlib.import_module(f"dlzoo.tasks.{info.name}"), inspect.isclass)
             if issubclass(cls, pl.LightningModule) and cls.__module__.startswith("dlzoo.tasks")]
    assert len(tasks) >= 7
    assert {cls.__name__: getattr(cls, "score_key", None) for cls in tasks if not getattr(cls, "score_key", None)} == {}
    assert all(cls.score_key.startswith("test/") for cls in tasks)
