"""Training probes for the lecture-claims suite (``dlzoo.claims``): what the optimisation does inside, per epoch.

Add one to any run from the command line, e.g.
``+callbacks.grad_norms._target_=dlzoo.training.probes.GradientNorms``; the epoch means land in MLflow and in
``history.csv`` (columns ``grad/*``, ``update/*``). Lightning's ``grad_norm`` utility gives the norms of one step;
these callbacks add the per-layer *epoch means* and the first/last-layer ratio the vanishing-gradient claim needs,
without a host sync per step (the sums stay tensors until the epoch ends).
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)


def weight_layers(net: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The weight matrices of the network's Linear/Conv layers, input side first (module order)."""
    return [(name, m.weight) for name, m in net.named_modules() if isinstance(m, WEIGHTED)]


class GradientNorms(pl.Callback):
    """Per-layer gradient norm, averaged over the epoch's steps: ``grad/l<i>`` (layer i from the input) and
    ``grad/first_over_last`` (input layer / output layer; << 1 when gradients vanish toward the input)."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._layers = weight_layers(pl_module)
        self._sums = torch.zeros(len(self._layers), device=pl_module.device)  # summed on device: no sync per step
        self._steps = 0

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        grads = [w.grad for _, w in self._layers]
        if any(g is None for g in grads):
            return
        self._sums += torch.stack([g.detach().norm() for g in grads])
        self._steps += 1

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._steps or not self._layers:
            return
        means = self._sums / self._steps
        metrics = {f"grad/l{i}": float(v) for i, v in enumerate(means)}
        metrics["grad/first_over_last"] = float(means[0] / means[-1].clamp_min(1e-30))
        pl_module.log_dict(metrics, on_epoch=True)


class UpdateNorms(pl.Callback):
    """How far the weights move: ``update/norm`` = ‖θ_end − θ_start‖ over the epoch (all trainable parameters), and
    ``update/effective_lr`` = Σ‖θ_after − θ_before‖ / Σ‖g‖ over the epoch's optimizer steps — the step length
    per unit of gradient (exactly lr for plain SGD). AdaGrad's accumulated squares make it die out; RMSProp's and
    Adam's running averages scale it back up as gradients shrink. Costs a copy of the weights per step: a probe
    for small models."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._params = [p for p in pl_module.parameters() if p.requires_grad]
        self._start = [p.detach().clone() for p in self._params]
        self._before: list[torch.Tensor] | None = None
        self._steps = torch.zeros((), device=pl_module.device)  # summed on device: no host sync per step
        self._grads = torch.zeros((), device=pl_module.device)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        self._settle()  # the previous step's move: the weights have not changed since it
        grads = [p.grad.detach() for p in self._params if p.grad is not None]
        if grads:
            self._grads += torch.sqrt(sum((g * g).sum() for g in grads))
            self._before = [p.detach().clone() for p in self._params]

    def _settle(self) -> None:
        """Add the last step's ‖θ_after − θ_before‖. Settled at the next step or the epoch's end, not in a batch
        hook: a batch may hold several steps (train.steps_per_execution)."""
        if self._before is not None:
            self._steps += torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(self._params, self._before)))
            self._before = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._settle()
        moved = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(self._params, self._start)))
        pl_module.log_dict({"update/norm": float(moved),
                            "update/effective_lr": float(self._steps / self._grads.clamp_min(1e-30))}, on_epoch=True)


class HessianSpectrum(pl.Callback):
    """The Hessian of the training loss at the end of training (and every ``every_n_epochs`` epochs if > 0):
    ``hessian/max``, ``hessian/min`` (extreme eigenvalues) and ``hessian/neg_fraction`` (share of negative
    eigenvalues: > 0 means a saddle point, not a minimum), see ``dlzoo.training.hessian.hessian_spectrum``.
    Measured in eval mode on the first ``max_samples`` training samples; classification tasks. Add it with
    ``+callbacks.hessian._target_=dlzoo.training.probes.HessianSpectrum`` (its arguments as
    ``+callbacks.hessian.steps=40``)."""

    def __init__(self, every_n_epochs: int = 0, max_samples: int = 512, batch_size: int = 256, steps: int = 30,
                 probes: int = 3, exact_max_params: int = 0, seed: int = 0):
        from dlzoo.errors import ConfigError

        for key, value, low in (("every_n_epochs", every_n_epochs, 0), ("max_samples", max_samples, 1),
                                ("batch_size", batch_size, 1), ("steps", steps, 2), ("probes", probes, 1),
                                ("exact_max_params", exact_max_params, 0)):
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"callbacks.hessian.{key}={value!r}: must be an integer >= {low}")
        self.every, self.max_samples, self.batch_size = every_n_epochs, max_samples, batch_size
        self.kwargs = dict(steps=steps, probes=probes, exact_max_params=exact_max_params, seed=seed)

    def measure(self, pl_module: pl.LightningModule, dataset) -> dict[str, float]:
        from dlzoo.tasks.classify import ClassificationTask
        from dlzoo.training.hessian import hessian_spectrum

        if not isinstance(pl_module, ClassificationTask):
            from dlzoo.errors import ConfigError

            raise ConfigError(f"HessianSpectrum measures classification tasks, not {type(pl_module).__name__}")
        n = min(self.max_samples, len(dataset))
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, range(n)), batch_size=self.batch_size)
        batches = [[t.to(pl_module.device) for t in b] for b in loader]
        was = pl_module.training
        pl_module.eval()
        params = [p for p in pl_module.parameters() if p.requires_grad]
        with torch.enable_grad(), torch.inference_mode(False):
            out = hessian_spectrum(lambda b: pl_module._step(b)[0], params, batches, **self.kwargs)
        pl_module.train(was)
        return {f"hessian/{k}": v for k, v in out.items()}

    def _dataset(self, trainer: pl.Trainer):
        return trainer.datamodule.datasets["train"]

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for key in [k for k in trainer.callback_metrics if k.startswith("hessian/")]:
            del trainer.callback_metrics[key]  # measured on some epochs only: not carried into the next rows

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.every and (trainer.current_epoch + 1) % self.every == 0:
            pl_module.log_dict(self.measure(pl_module, self._dataset(trainer)), on_epoch=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        metrics = {f"{k}_final": v for k, v in self.measure(pl_module, self._dataset(trainer)).items()}
        for logger in trainer.loggers:  # self.log is closed in on_train_end: straight to the loggers
            logger.log_metrics(metrics, step=trainer.global_step)
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in metrics.items()})
