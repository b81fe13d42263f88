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


def test_task_hooks_replace_the_evaluation_s_probes(tmp_path):
    """What the test evaluation used to probe for (a confusion matrix attribute, a regressor's buffers, which
    score keys register a model) is asked of the task."""
    from types import SimpleNamespace

    from dlzoo.tasks.regress import RegressionTask
    from dlzoo.tasks.registry import get_task

    sgd = functools.partial(torch.optim.SGD, lr=0.1)
    clf = ClassificationTask(nn.Linear(4, 3), 3, sgd)
    assert clf.test_figures(tmp_path, "toy") == []  # no test loop yet: nothing to draw
    clf.test_confusion = torch.eye(3, dtype=torch.long).numpy() * 5
    (png,) = clf.test_figures(tmp_path, "toy")
    assert png.exists() and png.suffix == ".png"

    reg = RegressionTask(nn.Linear(4, 1), sgd)
    reg.restore_from_registry(SimpleNamespace(target_stats=(150.0, 70.0)))
    assert (float(reg.y_mean), float(reg.y_std)) == (150.0, 70.0)
    x = torch.zeros(1, 4)
    assert float(reg(x)) == pytest.approx(float(reg.net(x)) * 70.0 + 150.0)
    # ranked figures where higher is better go to the registry; a loss or a mode count do not
    assert get_task("classify").registers and get_task("regress").registers
    assert not get_task("autoencode").registers and not get_task("detect").registers
