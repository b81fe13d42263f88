"""Learning-rate schedules the ``torch.optim.lr_scheduler`` module lacks: linear warmup followed by cosine or
linear decay (the Transformer-style schedule; the same formulas as Hugging Face's
``get_cosine_schedule_with_warmup`` / ``get_linear_schedule_with_warmup``, which are not a dependency here)."""

from __future__ import annotations

import functools
import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from dlzoo.errors import ConfigError


def warmup_factor(step: int, warmup_steps: int, total_steps: int, decay: str = "cosine", min_factor: float = 0.0) -> float:
    """The multiplier of the base LR at optimizer step ``step`` (0-based):
    step / warmup_steps during warmup, then from 1 down to ``min_factor`` at ``total_steps`` along
    0.5 * (1 + cos(pi * progress)) (cosine) or 1 - progress (linear), progress = (step - warmup) / (total - warmup)."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if decay == "cosine" else 1.0 - progress
    return min_factor + (1.0 - min_factor) * shape


def warmup_decay(optimizer: Optimizer, warmup_steps: int, total_steps: int | None = None, decay: str = "cosine",
                 min_factor: float = 0.0) -> LambdaLR:
    """Linear warmup over ``warmup_steps`` optimizer steps, then ``decay`` (cosine | linear) until ``total_steps``.
    Step it per batch (``interval: step``)."""
    if decay not in ("cosine", "linear"):
        raise ConfigError(f"scheduler.decay={decay!r}: choose one of cosine, linear")
    if total_steps is None:
        raise ConfigError("scheduler.total_steps is null and there is no trainer to count the steps")
    return LambdaLR(optimizer, functools.partial(warmup_factor, warmup_steps=warmup_steps, total_steps=total_steps,
                                                 decay=decay, min_factor=min_factor))


def build_scheduler(factory, optimizer: Optimizer, total_steps: int | None, interval: str = "epoch",
                    max_epochs: int | None = None) -> LRScheduler:
    """Call a partial scheduler constructor; a ``total_steps=None`` keyword (warmup, one-cycle) is filled with
    the run's length in the scheduler's own unit (optimizer steps or epochs)."""
    if interval not in ("epoch", "step"):
        raise ConfigError(f"scheduler.interval={interval!r}: choose one of epoch, step")
    keywords = getattr(factory, "keywords", {})
    if "total_steps" in keywords and keywords["total_steps"] is None:
        n = total_steps if interval == "step" else max_epochs
        if n is None or (isinstance(n, float) and math.isinf(n)):
            raise ConfigError("scheduler.total_steps is null and the run's length is unknown (set trainer.max_epochs)")
        return factory(optimizer, total_steps=int(n))
    return factory(optimizer)
