"""The config keys every task reads alike, turned into the plain arguments task constructors take: the
optimizer and LR schedule (Hydra partials), the weight penalties of the regularizer group, the loss, and the
monitored metrics a task cannot log. Used by the tasks' ``from_config``; the constructors never see the config."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlzoo.errors import ConfigError


def partial(node: DictConfig | None, drop: tuple[str, ...] = ()):
    """A ``_target_`` node instantiated (a partial constructor where the node says ``_partial_``); None if absent."""
    from hydra.utils import instantiate

    if not node or "_target_" not in node:
        return None
    node = OmegaConf.create({k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k not in drop})
    return instantiate(node)


def optimizer_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """The optimizer, the LR schedule and when it steps, and decoupled weight decay."""
    reg = cfg.get("regularizer") or {}
    return dict(
        optimizer=partial(cfg.optimizer),
        scheduler=partial(cfg.get("scheduler"), drop=("interval",)),
        scheduler_interval=(cfg.get("scheduler") or {}).get("interval", "epoch"),
        weight_decay=reg.get("weight_decay", cfg.optimizer.get("weight_decay", 0.0)) or 0.0,
    )


def training_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """Optimizer, LR schedule and weight penalties: the task arguments every task takes alike."""
    reg = cfg.get("regularizer") or {}
    return optimizer_kwargs(cfg) | dict(l1=reg.get("l1", 0.0) or 0.0, l2_penalty=reg.get("l2_penalty", 0.0) or 0.0)


def label_smoothing(cfg: DictConfig) -> float:
    return (cfg.get("regularizer") or {}).get("label_smoothing", 0.0) or 0.0


def loss_spec(cfg: DictConfig, default: str) -> tuple[str, dict]:
    """(loss name, its options) of the ``loss`` group, ``default`` where the config has none."""
    loss_cfg = OmegaConf.to_container(cfg.get("loss") or {"name": default}, resolve=True)
    return loss_cfg.pop("name"), loss_cfg


def section(cfg: DictConfig, key: str) -> dict:
    """A task's own config section (``gan``, ``detect``, ``seq2seq``, ...) as plain keyword arguments."""
    return OmegaConf.to_container(cfg[key], resolve=True) if cfg.get(key) else {}


def refuse_monitors(cfg: DictConfig, unlogged: tuple[str, ...], fix: str, logged: tuple[str, ...] = ()) -> None:
    """A callback (checkpoint, early stopping) monitoring a metric the task does not log fails only after
    the first epoch: refuse it now. ``unlogged``: keys known to be missing; ``logged``: if given, the only
    keys (or null) that may be monitored."""
    for name in ("model_checkpoint", "early_stopping"):
        monitor = OmegaConf.select(cfg, f"callbacks.{name}.monitor", default=None)
        if monitor is not None and (monitor in unlogged or (logged and monitor not in logged)):
            raise ConfigError(f"task={cfg.task} logs no {monitor} for callbacks.{name} to monitor: {fix}")
