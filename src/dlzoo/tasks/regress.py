"""Regression task: one LightningModule for every regression network (the network is injected), and the
closed-form least-squares solution that linear regression trained by SGD is compared with (004, d2l 3.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import lightning.pytorch as pl
import torch
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score

from dlzoo.tasks.base import BuildContext, EvalOutputs, StagedSteps, Task, predictions
from dlzoo.tasks.registry import register_task


@register_task("regress")
class RegressionTask(Task, StagedSteps, pl.LightningModule):
    """Learns on standardised targets (so learning rates do not depend on the target's units) and reports
    ``rmse``, ``mae``, ``r2`` in the target's own units as ``train/*``, ``val/*``, ``test/*``.

    The target mean/std are buffers (saved in checkpoints), set from the datamodule's ``target_stats``
    when fitting starts; ``forward`` returns predictions in target units, (B, 1).
    """

    # the figure a run of this task is ranked and reported by: coefficient of determination
    score_key = "test/r2"
    registers = True
    datamodule = "regression"

    @classmethod
    def from_config(cls, cfg, net: nn.Module, num_classes: int, context: BuildContext):
        from dlzoo.tasks.options import loss_spec, refuse_monitors, training_kwargs
        from dlzoo.training.losses import build_loss

        refuse_monitors(cfg, ("val/acc",), "add callbacks=regress (monitors val/loss), or start from "
                        "experiment=diabetes_mlp")
        loss_name, loss_cfg = loss_spec(cfg, "mse")
        return cls(net, loss_fn=build_loss(loss_name, "regress", **loss_cfg), **training_kwargs(cfg))

    def __init__(self, net: nn.Module, optimizer: Callable, scheduler: Callable | None = None,
                 scheduler_interval: str = "epoch", weight_decay: float = 0.0, loss_fn: nn.Module | None = None,
                 l1: float = 0.0, l2_penalty: float = 0.0):
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "loss_fn"])
        self.net = net
        if loss_fn is None:
            from dlzoo.training.losses import build_loss

            loss_fn = build_loss("mse", "regress")
        self.loss_fn = loss_fn
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.register_buffer("y_mean", torch.tensor(0.0))
        self.register_buffer("y_std", torch.tensor(1.0))
        metrics = MetricCollection({"rmse": MeanSquaredError(squared=False), "mae": MeanAbsoluteError(), "r2": R2Score()})
        # (a ModuleDict keyed "train" would shadow nn.Module.train)
        self.train_metrics, self.val_metrics, self.test_metrics = (metrics.clone(prefix=f"{s}/") for s in ("train", "val", "test"))

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        if stage == "fit":
            self.restore_from_registry(dm)

    def raw_input_model(self, dm) -> tuple | None:
        """The network between feature standardisation and target scaling: it takes raw features."""
        from dlzoo.data.regression import RegressionDataModule
        from dlzoo.tracking.model import raw_input_regressor

        return raw_input_regressor(self.net, dm) if isinstance(dm, RegressionDataModule) else None

    def restore_from_registry(self, dm) -> None:
        """The target scaling (mean, std of the training split's targets), which a checkpoint holds as buffers
        and a registered model (the network alone) does not."""
        if getattr(dm, "target_stats", None):
            self.y_mean.fill_(dm.target_stats[0])
            self.y_std.fill_(dm.target_stats[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * self.y_std + self.y_mean  # (B, 1), target units

    def evaluation_outputs(self, dm, loader, split: str, out_dir: Path, title: str) -> EvalOutputs:
        """(true, predicted) target of every sample of ``loader``; a linear network (an MLP without hidden
        layers: model=logreg) is also compared with the closed-form least-squares fit."""
        from dlzoo.models.mlp import MLP

        labels, preds = predictions(self, loader, lambda out: out.squeeze(1))
        linear = isinstance(self.net, MLP) and not any(isinstance(m, nn.Linear) for m in self.net.features)
        return EvalOutputs(labels, preds, closed_form_comparison(self, dm, split) if linear else {})

    def _step(self, batch, stage: str):
        x, y = batch  # (B, F), (B,)
        z = self.net(x)  # (B, 1), standardised units
        loss = self.loss_fn(z, (y - self.y_mean) / self.y_std)
        pred = z.squeeze(1) * self.y_std + self.y_mean  # (B,)
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(pred, y)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=stage != "test")
        self.log_dict(metrics, on_step=False, on_epoch=True)
        return loss


def least_squares(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The closed-form linear regression (w, b) = argmin ||x w + b - y||^2, i.e. the normal equations
    [x 1]^T [x 1] theta = [x 1]^T y, solved stably by ``torch.linalg.lstsq`` (QR) instead of inverting."""
    x1 = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], 1)  # (N, F + 1)
    theta = torch.linalg.lstsq(x1, y.double().unsqueeze(1)).solution.squeeze(1)  # (F + 1,)
    return theta[:-1].float(), theta[-1].float()


@torch.no_grad()
def affine_coefficients(f: Callable[[torch.Tensor], torch.Tensor], n_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(w, b) of an affine map f: b = f(0), w_i = f(e_i) - f(0). For a trained linear model this reads off the
    weights it learned in target units (whatever scaling the task wraps around the network)."""
    basis = torch.cat([torch.zeros(1, n_features), torch.eye(n_features)])  # (F + 1, F)
    out = f(basis).reshape(-1)  # (F + 1,)
    return out[1:] - out[0], out[0]



def closed_form_comparison(task: RegressionTask, dm, split: str) -> dict[str, float]:
    """Linear regression trained by SGD vs the least-squares solution on the same (standardised) training
    features: the closed form's RMSE and R^2 on ``split`` and the relative distance between the two weight
    vectors, ||w_sgd - w_ls|| / ||w_ls|| (in target units)."""
    from torchmetrics.functional import mean_squared_error, r2_score

    x_tr, y_tr = dm.datasets["train"].tensors  # (N, F), (N,)
    w_ls, b_ls = least_squares(x_tr, y_tr)
    w_sgd, _ = affine_coefficients(task, x_tr.shape[1])
    x, y = dm.datasets[split].tensors
    pred = x @ w_ls + b_ls  # (N,)
    return {f"{split}/rmse_closed_form": float(mean_squared_error(pred, y, squared=False)),
            f"{split}/r2_closed_form": float(r2_score(pred, y)),
            "linear/weight_gap_to_closed_form": float((w_sgd - w_ls).norm() / w_ls.norm())}
