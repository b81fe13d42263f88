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
- LR schedulers where Lightning steps them: ``interval: step`` ones after every optimizer step,
  ``interval: epoch`` ones after the epoch's last step (before validation), ReduceLROnPlateau on its monitored
  figure after the epoch's hooks (the checkpoint callback's too), i.e. when the next epoch or the fit's end
  comes;
- ``trainer.max_steps`` (and ``fast_dev_run``) counts optimizer steps (``trainer.global_step``), and
  ``trainer.limit_train_batches`` (a number or a fraction) still counts batches of ``data.batch_size``;
  ``trainer.overfit_batches`` (a debugging run) trains one step per batch.

What is per Lightning step becomes per k optimizer steps: the callbacks' ``on_train_batch_start/end`` (early
stopping and checkpoints act per epoch or on validation, so they are unaffected) and an integer
``trainer.val_check_interval``, which is therefore refused. Gradient accumulation is refused too: it is the
opposite trade (one step per several batches).
"""

from __future__ import annotations

import logging
import math

import torch

from dlzoo.errors import ConfigError

log = logging.getLogger(__name__)

PLATEAU_MONITOR = "val/loss"  # what ReduceLROnPlateau steps on (dlzoo.training.optim.configure_optimizers)


def dispatches_steps(training_step):
    """Mark a ``training_step`` that hands its batch to ``MultiStep.multistep`` when ``multistep_k > 1``: a
    subclass that overrides ``training_step`` with one that does not would take no step at all under manual
    optimization, so ``setup`` refuses such a task instead."""
    training_step.dispatches_steps = True
    return training_step


class MultiStep:
    """Mixin for a LightningModule whose ``training_step`` returns the loss of one batch: call
    ``enable_multistep(k, batch_size, clip, epoch_limit)`` before fitting (``dlzoo.train`` does) and route
    ``training_step`` through ``multistep(batch, batch_idx, one_step)`` when ``multistep_k > 1``."""

    multistep_k: int = 1

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
        steps = len(chunks)
        if trainer.max_steps > 0:
            chunks = chunks[:max(0, trainer.max_steps - trainer.global_step)]
        hooks = self._lean_hooks(trainer)
        # the datamodule's per-step transform (augmentation), which it leaves to the task under several steps
        prepare = getattr(trainer.datamodule, "augment_step", None)
        losses = []
        for i, chunk in enumerate(chunks):
            self.__dict__["last_of_batch"] = i == len(chunks) - 1  # (nn.Module's __setattr__ is slow)
            loss = one_step(prepare(chunk) if prepare is not None else chunk, batch_idx)
            opt.zero_grad()
            if hooks is None:
                self.manual_backward(loss)
                opt.step()
            else:
                self._lean_step(hooks, loss, opt)
            for scheduler in per_step:
                scheduler.step()
            losses.append(loss.detach())
        self.__dict__["last_of_batch"] = True
        if len(chunks) < steps:
            # trainer.max_steps ends the fit inside this batch: with one step per batch Lightning would stop
            # mid-epoch, before the epoch's validation, so none runs after this batch either (the epoch loop's
            # own switch for skipping its next validation)
            trainer.fit_loop.epoch_loop._skip_next_val = True
        elif batch_idx + 1 >= trainer.num_training_batches:
            # the epoch's last step: Lightning steps its epoch schedulers here, before validation (all but
            # ReduceLROnPlateau, which waits for the epoch's hooks: on_train_epoch_end below)
            self._step_epoch_schedulers(plateau=False)
        return torch.stack(losses).mean() if losses else None

    def _lean_hooks(self, trainer) -> dict[str, list] | None:
        """Per hook of a step, the callbacks' and the task's methods that do something, where the plain path
        applies (one device, ``32-true`` precision, no profiler); None elsewhere (Lightning's own path).

        Why not always Lightning's path: ``manual_backward`` and the optimizer wrapper call every callback's
        ``on_before_backward`` / ``on_after_backward`` / ``on_before_optimizer_step`` -- inherited no-ops for
        almost all of them, each in a profiler context under a name built from the callback's state key, with
        two ``nn.Module`` attribute writes around each hook -- on a 2-core CPU a large share of a softmax
        regression's whole step (benchmarks/README.md, steps_per_execution). Here only the methods that are overridden are called, in Lightning's
        order (callbacks, then the task), and the rest of what those calls do on this path is done as they do
        it: ``LightningModule.backward``, the step counters of Lightning's manual-optimization loop (the
        optimizer wrapper's ``_on_before_step`` / ``_on_after_step``), the hooks before the step inside the
        optimizer's closure. Under mixed precision, DDP or a profiler the plug-ins add to each call, and
        Lightning's path is taken. tests/training/test_multistep.py checks both paths against one step per
        batch."""
        cached = self.__dict__.get("_lean")
        if cached is not None and cached[0] is trainer:
            return cached[1]
        import lightning.pytorch as pl
        from lightning.pytorch.plugins.precision import Precision
        from lightning.pytorch.profilers import PassThroughProfiler
        from lightning.pytorch.strategies import SingleDeviceStrategy
        from lightning.pytorch.utilities.model_helpers import is_overridden

        hooks = None
        if (type(trainer.precision_plugin) is Precision and type(trainer.strategy) is SingleDeviceStrategy
                and isinstance(trainer.profiler, PassThroughProfiler)):
            def acts(name: str) -> bool:  # the task's hook does something: a subclass's, or this mixin's clipping
                if getattr(type(self), name) is getattr(MultiStep, name, None):
                    return name == "on_before_optimizer_step" and bool(self.multistep_clip[0])
                return is_overridden(name, self)

            hooks = {name: [getattr(cb, name) for cb in trainer.callbacks
                            if getattr(type(cb), name) is not getattr(pl.Callback, name)]
                     + ([getattr(self, name)] if acts(name) else [])
                     for name in ("on_before_backward", "on_after_backward", "on_before_optimizer_step")}
        self.__dict__["_lean"] = (trainer, hooks)
        return hooks

    def _lean_step(self, hooks: dict[str, list], loss, opt) -> None:
        """``manual_backward(loss)`` and ``opt.step()`` on the plain path (see ``_lean_hooks``)."""
        self._call_hooks(hooks["on_before_backward"], "on_before_backward", loss)
        self.backward(loss)
        self._call_hooks(hooks["on_after_backward"], "on_after_backward")
        opt._on_before_step()  # Lightning's step counters (trainer.global_step)
        optimizer = opt.optimizer
        optimizer.step(closure=lambda: self._call_hooks(hooks["on_before_optimizer_step"], "on_before_optimizer_step",
                                                        optimizer))
        opt._on_after_step()

    def _call_hooks(self, methods: list, name: str, *args) -> None:
        if not methods:
            return None
        previous = self._current_fx_name  # as Lightning's hook calls: what self.log is called from
        self.__dict__["_current_fx_name"] = name  # a plain attribute (nn.Module's __setattr__ is slow)
        trainer = self.trainer
        for method in methods:
            if getattr(method, "__self__", None) is self:
                method(*args)
            else:
                method(trainer, self, *args)
        self.__dict__["_current_fx_name"] = previous
        return None

    def on_before_optimizer_step(self, optimizer) -> None:
        super().on_before_optimizer_step(optimizer)
        if not self.automatic_optimization and self.multistep_k > 1 and self.multistep_clip[0]:
            self.clip_gradients(optimizer, gradient_clip_val=self.multistep_clip[0],
                                gradient_clip_algorithm=self.multistep_clip[1] or "norm")

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        # Lightning steps ReduceLROnPlateau after every on_train_epoch_end hook, the checkpoint callback's among
        # them (which runs after this one): so that step waits for the next epoch's start, or the fit's end
        self.multistep_plateau_due = not self.automatic_optimization and self.multistep_k > 1

    def on_train_epoch_start(self) -> None:
        self._step_epoch_schedulers(plateau=True)
        super().on_train_epoch_start()

    def on_train_end(self) -> None:
        self._step_epoch_schedulers(plateau=True)
        super().on_train_end()

    def _step_epoch_schedulers(self, plateau: bool) -> None:
        """Step the ``interval: epoch`` schedulers of the epoch that ends: ReduceLROnPlateau ones (on their
        monitored figure) if ``plateau``, the others if not -- where and when Lightning's automatic
        optimization steps each kind."""
        if plateau and not getattr(self, "multistep_plateau_due", False):
            return
        trainer = self.trainer
        if plateau:
            self.__dict__["multistep_plateau_due"] = False
        epoch = trainer.current_epoch - (1 if plateau else 0)  # the epoch that ended (counted already when due)
        for config in trainer.lr_scheduler_configs:
            is_plateau = isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
            if config.interval != "epoch" or is_plateau != plateau or (epoch + 1) % (config.frequency or 1):
                continue
            if is_plateau:
                # Lightning keeps no monitor under manual optimization: the one configure_optimizers names
                value = trainer.callback_metrics.get(PLATEAU_MONITOR)
                if value is None:
                    raise ConfigError(f"ReduceLROnPlateau monitors {PLATEAU_MONITOR}, which was not logged "
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
    if (not isinstance(task, MultiStep) or not hasattr(dm, "steps_per_execution")
            or not getattr(type(task).training_step, "dispatches_steps", False)):
        raise ConfigError(f"train.steps_per_execution={k}: task={cfg.task} takes one optimizer step per training "
                          "batch (classification and distillation take several); set train.steps_per_execution=1")
    if cfg.trainer.get("overfit_batches"):
        # a debugging run on a few fixed batches (debug=overfit), which Lightning counts in its own batches for
        # training and validation alike: one step per batch keeps its meaning, and speed is not the point there
        log.info("train.steps_per_execution=%s: one step per batch under trainer.overfit_batches", k)
        return
    limit, batch = cfg.trainer.get("limit_train_batches"), cfg.data.batch_size
    if isinstance(limit, float) and 0 < limit < 1:  # a fraction of the epoch's steps, as Lightning takes it
        limit = int(math.ceil(len(dm.datasets["train"]) / batch) * limit)
    if isinstance(limit, int) and limit >= 0:
        # k divides the limit: the loader then draws exactly the limit's samples from the sampler, as one step
        # per batch does (torch's RandomSampler draws its next permutation when it is iterated to its end, so
        # drawing more would change the shuffles of the epochs after)
        k = max(d for d in range(1, max(1, min(k, limit)) + 1) if limit % d == 0) if limit else 1
        if k == 1:
            return
    dm.steps_per_execution = k
    task.enable_multistep(k, batch, (cfg.trainer.get("gradient_clip_val"), cfg.trainer.get("gradient_clip_algorithm")),
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


def total_steps(task) -> int:
    """The optimizer steps of a ``multistep`` task's whole fit (the schedulers' ``total_steps``): what
    Lightning's ``estimated_stepping_batches`` is with one step per batch."""
    trainer = task.trainer
    trainer.estimated_stepping_batches  # noqa: B018 -- sets up the train loader, as Lightning does for its own count
    loader = trainer.train_dataloader
    sampler = loader.batch_sampler.sampler if loader.batch_sampler is not None else loader.sampler
    per_epoch = min(trainer.num_training_batches * task.multistep_k, math.ceil(len(sampler) / task.multistep_batch))
    if task.multistep_epoch_limit is not None:
        per_epoch = min(per_epoch, task.multistep_epoch_limit)
    if trainer.max_epochs is None or trainer.max_epochs < 0:
        return trainer.max_steps
    run = per_epoch * trainer.max_epochs
    return min(trainer.max_steps, run) if trainer.max_steps > 0 else run


def step_map(trainer):
    """Lightning's logging step -> the same point counted in optimizer steps, as one step per batch logs it:
    what ``BufferedMLFlowLogger.step_map`` takes. During fitting Lightning logs the epoch's and validation's
    figures at the 0-based index of the last batch done (its ``_batches_that_stepped`` counter, which it
    lowers by one for the epoch's figures); that is the last optimizer step's index here. After fitting (test)
    it logs at the number of batches done: the number of optimizer steps here."""
    loop = trainer.fit_loop.epoch_loop

    def optimizer_step(step: int) -> int:
        last = trainer.global_step - (0 if trainer.testing else 1)
        return max(0, last - (loop._batches_that_stepped - step))

    return optimizer_step
