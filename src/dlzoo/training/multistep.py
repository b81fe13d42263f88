"""Several optimizer steps per Lightning step: ``train.steps_per_execution`` (the idea of Keras' option of that name).

What Lightning does around every training step -- its loop's bookkeeping, every callback's batch hooks, the
fetch of the next batch, the optimizer closure -- costs a few hundred microseconds on a CPU whatever the model
(benchmarks/step_profile.py). For a small model, whose step is itself a fraction of a millisecond (and on a GPU
any of the zoo's models), that is most of the time. With ``train.steps_per_execution=k`` the train loader hands
Lightning batches of k x ``data.batch_size`` samples and the task cuts each into k batches of ``data.batch_size``
and takes one optimizer step on each, under Lightning's manual optimization, so Lightning's cost is paid once per
k steps. The batches are the same samples in the same order as with k = 1 (the sampler's permutation is cut into
longer runs, then cut again), and every step is what Lightning's automatic optimization does:

- zero the gradients, ``manual_backward`` (precision plug-in: loss scaling under 16-mixed; DDP all-reduces the
  gradients of every step), the optimizer step through Lightning's optimizer wrapper (unscaling, the
  ``on_before_optimizer_step`` hooks of callbacks and of the task);
- gradient clipping (``trainer.gradient_clip_val`` / ``_algorithm``, which Lightning refuses under manual
  optimization, so ``dlzoo.train`` hands them to the task) in ``on_before_optimizer_step``, after unscaling, as
  Lightning clips;
- LR schedulers: ``interval: step`` ones after every optimizer step, ``interval: epoch`` ones (and
  ReduceLROnPlateau on its monitored metric) once the training epoch has ended, after validation and after
  the checkpoint callback saved the epoch (as Lightning orders it), i.e. when the next epoch or the fit's
  end comes;
- ``trainer.max_steps`` counts optimizer steps (``trainer.global_step``), and an integer
  ``trainer.limit_train_batches`` still counts batches of ``data.batch_size``.

What is per Lightning step becomes per k optimizer steps: the callbacks' ``on_train_batch_start/end`` (early
stopping and checkpoints act per epoch or on validation, so they are unaffected) and an integer
``trainer.val_check_interval``, which is therefore refused. Gradient accumulation is refused too: it is the
opposite trade (one step per several batches).
"""

from __future__ import annotations

import math

import torch

from dlzoo.errors import ConfigError


class MultiStep:
    """Mixin for a LightningModule whose ``training_step`` returns the loss of one batch: call
    ``enable_multistep(k, batch_size, clip, epoch_limit)`` before fitting (``dlzoo.train`` does) and route
    ``training_step`` through ``multistep(batch, batch_idx, one_step)`` when ``multistep_k > 1``."""

    multistep_k: int = 1
    multistep_monitor = "val/loss"  # what ReduceLROnPlateau steps on (configure_optimizers' monitor)

    def enable_multistep(self, k: int, batch_size: int, clip: tuple[float | None, str | None] = (None, None),
                         epoch_limit: int | None = None) -> None:
        """k optimizer steps per training batch of k x ``batch_size`` samples; ``clip``: (gradient_clip_val,
        gradient_clip_algorithm) taken from the Trainer; ``epoch_limit``: at most so many steps per epoch (an
        integer ``trainer.limit_train_batches``)."""
        self.multistep_k, self.multistep_batch = k, batch_size
        self.multistep_clip, self.multistep_epoch_limit = clip, epoch_limit
        self.automatic_optimization = k == 1
        self.last_of_batch = True  # whether the step running is the last of its Lightning batch

    def multistep(self, batch, batch_idx: int, one_step):
        """One optimizer step per ``multistep_batch`` samples of ``batch``; ``one_step(batch, batch_idx)`` is
        the task's training step on one of them (its loss). Returns the steps' mean loss (for the guards)."""
        trainer = self.trainer
        opt = self.optimizers()
        per_step = [c.scheduler for c in trainer.lr_scheduler_configs if c.interval == "step"]
        chunks = list(zip(*(t.split(self.multistep_batch) for t in batch)))
        first = batch_idx * self.multistep_k  # steps of this epoch before this batch
        if self.multistep_epoch_limit is not None:
            chunks = chunks[:max(0, self.multistep_epoch_limit - first)]
        if trainer.max_steps > 0:
            chunks = chunks[:max(0, trainer.max_steps - trainer.global_step)]
        losses = []
        for i, chunk in enumerate(chunks):
            self.last_of_batch = i == len(chunks) - 1
            loss = one_step(chunk, batch_idx)
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
            for scheduler in per_step:
                scheduler.step()
            losses.append(loss.detach())
        self.last_of_batch = True
        return torch.stack(losses).mean() if losses else None

    def on_before_optimizer_step(self, optimizer) -> None:
        super().on_before_optimizer_step(optimizer)
        if not self.automatic_optimization and self.multistep_k > 1 and self.multistep_clip[0]:
            self.clip_gradients(optimizer, gradient_clip_val=self.multistep_clip[0],
                                gradient_clip_algorithm=self.multistep_clip[1] or "norm")

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        # Lightning steps epoch schedulers after every on_train_epoch_end hook, the checkpoint callback's among
        # them (which runs after this one): so the epoch's step waits for the next epoch's start, or the end
        self.multistep_epoch_due = not self.automatic_optimization and self.multistep_k > 1

    def on_train_epoch_start(self) -> None:
        self._step_epoch_schedulers()
        super().on_train_epoch_start()

    def on_train_end(self) -> None:
        self._step_epoch_schedulers()
        super().on_train_end()

    def _step_epoch_schedulers(self) -> None:
        if not getattr(self, "multistep_epoch_due", False):
            return
        self.multistep_epoch_due = False
        epoch = self.trainer.current_epoch - 1  # the epoch that ended (its count is already advanced)
        for config in self.trainer.lr_scheduler_configs:
            if config.interval != "epoch" or (epoch + 1) % (config.frequency or 1):
                continue
            if isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                # Lightning keeps no monitor under manual optimization: the task's (configure_optimizers)
                value = self.trainer.callback_metrics.get(self.multistep_monitor)
                if value is None:
                    raise ConfigError(f"ReduceLROnPlateau monitors {self.multistep_monitor}, which was not logged "
                                      f"by epoch {epoch}")
                config.scheduler.step(value)
            else:
                config.scheduler.step()


def setup(cfg, dm, task) -> None:
    """Give the datamodule and the task ``train.steps_per_execution`` (refused for a task that cannot take it),
    with the Trainer's gradient clipping and integer ``limit_train_batches``, which the task then applies."""
    k = cfg.train.get("steps_per_execution", 1) or 1
    if k == 1:
        return
    if not isinstance(task, MultiStep) or not hasattr(dm, "steps_per_execution"):
        raise ConfigError(f"train.steps_per_execution={k}: task={cfg.task} takes one optimizer step per training "
                          "batch (task=classify takes several); set train.steps_per_execution=1")
    limit = cfg.trainer.get("limit_train_batches")
    dm.steps_per_execution = k
    task.enable_multistep(k, cfg.data.batch_size, (cfg.trainer.get("gradient_clip_val"),
                                                    cfg.trainer.get("gradient_clip_algorithm")),
                          epoch_limit=limit if isinstance(limit, int) else None)


def trainer_kwargs(task, kwargs: dict) -> dict:
    """The Trainer's arguments for a task set up by ``setup``: no gradient clipping (the task clips: Lightning
    refuses it under manual optimization) and an integer ``limit_train_batches`` in batches of k steps."""
    if getattr(task, "multistep_k", 1) == 1:
        return kwargs
    kwargs = {k: v for k, v in kwargs.items() if k not in ("gradient_clip_val", "gradient_clip_algorithm")}
    if task.multistep_epoch_limit is not None:
        kwargs["limit_train_batches"] = math.ceil(task.multistep_epoch_limit / task.multistep_k)
    return kwargs


def steps_per_epoch(trainer, batch_size: int, k: int, epoch_limit: int | None) -> int:
    """Optimizer steps in one epoch of a ``multistep`` task (the schedulers' ``total_steps``)."""
    loader = trainer.train_dataloader
    sampler = loader.batch_sampler.sampler if loader.batch_sampler is not None else loader.sampler
    steps = min(trainer.num_training_batches * k, math.ceil(len(sampler) / batch_size))
    return min(steps, epoch_limit) if epoch_limit is not None else steps
