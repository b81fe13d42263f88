"""Checks on the composed config, run before anything is trained, and small config helpers.

Hydra itself refuses unknown group options (listing the valid ones) and unknown keys in structured
parts; this module refuses values that compose fine but make no sense (negative learning rate, batch
size 0, dropout >= 1 ...), naming the key and the allowed range, all problems at once.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from dlzoo.errors import ConfigError

Check = Callable[[Any], bool]


def _num(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


POSITIVE: tuple[Check, str] = (lambda v: _num(v) and v > 0, "a number > 0")
NON_NEGATIVE: tuple[Check, str] = (lambda v: _num(v) and v >= 0, "a number >= 0")
UNIT_OPEN: tuple[Check, str] = (lambda v: _num(v) and 0 <= v < 1, "a number in [0, 1)")
POS_INT: tuple[Check, str] = (lambda v: _int(v) and v >= 1, "an integer >= 1")
NON_NEG_INT: tuple[Check, str] = (lambda v: _int(v) and v >= 0, "an integer >= 0")
EPOCHS: tuple[Check, str] = (lambda v: _int(v) and (v >= 1 or v == -1), "an integer >= 1 (or -1 for no limit)")
OPT_POS_INT: tuple[Check, str] = (lambda v: v is None or (_int(v) and v >= 1), "null or an integer >= 1")

PRECISIONS = {"32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true", "64", "transformer-engine"}

# key (dotted) -> (check, what is allowed). A key that is absent from the config is not checked.
RULES: dict[str, tuple[Check, str]] = {
    "seed": NON_NEG_INT,
    "runtime.threads": OPT_POS_INT,
    "logger.flush_every_s": NON_NEGATIVE,
    "logger.system_metrics": (lambda v: isinstance(v, bool), "true or false"),
    "logger.system_metrics_interval_s": POSITIVE,
    "optimizer.lr": POSITIVE,
    "optimizer.weight_decay": NON_NEGATIVE,
    "optimizer.momentum": UNIT_OPEN,
    "data.batch_size": POS_INT,
    "data.num_workers": NON_NEG_INT,
    "data.image_size": OPT_POS_INT,
    "data.train_samples": OPT_POS_INT,
    "model.dropout": UNIT_OPEN,
    "model.image_size": OPT_POS_INT,
    "regularizer.dropout": UNIT_OPEN,
    "regularizer.weight_decay": NON_NEGATIVE,
    "regularizer.label_smoothing": UNIT_OPEN,
    "regularizer.l1": NON_NEGATIVE,
    "regularizer.l2_penalty": NON_NEGATIVE,
    "regularizer.dropconnect": UNIT_OPEN,
    "regularizer.spatial_dropout": UNIT_OPEN,
    "regularizer.variational_dropout": UNIT_OPEN,
    "trainer.gradient_clip_algorithm": (lambda v: v in (None, "norm", "value"), "null, 'norm' or 'value'"),
    "scheduler.warmup_steps": NON_NEG_INT,
    "loss.delta": POSITIVE,
    "loss.beta": POSITIVE,
    "loss.max_loss": POSITIVE,
    "hparams_search.n_trials": POS_INT,
    "regularizer.augment.translate": (lambda v: _num(v) and 0 <= v < 0.5, "a number in [0, 0.5)"),
    "regularizer.augment.crop_padding": NON_NEG_INT,
    "regularizer.augment.rotation": (lambda v: _num(v) and 0 <= v <= 180, "a number of degrees in [0, 180]"),
    "regularizer.augment.scale": UNIT_OPEN,
    "regularizer.augment.shear": (lambda v: _num(v) and 0 <= v < 90, "a number of degrees in [0, 90)"),
    "regularizer.augment.hflip": (lambda v: isinstance(v, bool), "true or false"),
    "regularizer.augment.brightness": UNIT_OPEN,
    "regularizer.augment.contrast": UNIT_OPEN,
    "regularizer.augment.saturation": UNIT_OPEN,
    "regularizer.augment.noise": NON_NEGATIVE,
    "model.width": POSITIVE,
    "model.aux_weight": NON_NEGATIVE,
    "trainer.max_epochs": EPOCHS,
    "trainer.max_steps": (lambda v: _int(v) and (v >= 1 or v == -1), "an integer >= 1 (or -1 for no limit)"),
    "trainer.devices": (lambda v: v == "auto" or (_int(v) and v >= 1) or isinstance(v, (list, tuple)), "an integer >= 1, a list of ids or 'auto'"),
    "trainer.precision": (lambda v: str(v) in PRECISIONS, "one of " + ", ".join(sorted(PRECISIONS))),
    "trainer.num_nodes": POS_INT,
    "trainer.gradient_clip_val": (lambda v: v is None or (_num(v) and v > 0), "null or a number > 0"),
    "callbacks.early_stopping.patience": NON_NEG_INT,
    "seq2seq.beam_size": POS_INT,
    "seq2seq.scheduled_sampling": (lambda v: _num(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "seq2seq.max_extra_len": NON_NEG_INT,
    "model.patch": POS_INT,
    "prepare.val_fraction": (lambda v: _num(v) and 0 < v < 1, "a number in (0, 1)"),
    "prepare.test_fraction": (lambda v: _num(v) and 0 < v < 1, "a number in (0, 1)"),
    "prepare.seed": NON_NEG_INT,
    "distill.temperature": POSITIVE,
    "distill.alpha": (lambda v: _num(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "trainer.profiler": (lambda v: v in (None, "simple", "advanced", "pytorch"),
                         "null, 'simple', 'advanced' or 'pytorch' (Lightning's profilers)"),
    "train.steps_per_execution": POS_INT,
    "train.channels_last": (lambda v: isinstance(v, bool), "true or false"),
    "trainer.overfit_batches": (lambda v: _num(v) and v >= 0, "a number >= 0 (batches, or a fraction < 1)"),
}
# detection (task=detect)
RULES.update({
    "model.grid": POS_INT,
    "model.boxes": POS_INT,
    "model.lambda_coord": NON_NEGATIVE,
    "model.lambda_noobj": NON_NEGATIVE,
    "detect.score_threshold": UNIT_OPEN,
    "detect.nms_iou": (lambda v: _num(v) and 0 < v <= 1, "a number in (0, 1]"),
    "detect.max_detections": POS_INT,
})

_MISSING = object()


def validate(cfg: DictConfig) -> None:
    problems = []
    for key, (ok, allowed) in RULES.items():
        value = OmegaConf.select(cfg, key, default=_MISSING)
        if value is _MISSING:
            continue
        if not ok(value):
            problems.append(f"{key}={value!r}: must be {allowed}")
    if problems:
        raise ConfigError("invalid config (nothing was trained):\n  " + "\n  ".join(problems))
    check_steps_per_execution(cfg)


def check_steps_per_execution(cfg) -> int:
    """``train.steps_per_execution`` of a composed config, refused (before training) where it cannot apply
    (dlzoo.training.multistep)."""
    k = OmegaConf.select(cfg, "train.steps_per_execution", default=1) or 1
    if k == 1:
        return 1
    trainer = cfg.get("trainer") or {}
    if (trainer.get("accumulate_grad_batches") or 1) > 1:
        raise ConfigError(f"train.steps_per_execution={k} and trainer.accumulate_grad_batches="
                          f"{trainer.accumulate_grad_batches} do not go together (several steps per batch, or one "
                          "step per several batches): set one of them to 1")
    if isinstance(trainer.get("val_check_interval"), int):
        raise ConfigError(f"train.steps_per_execution={k} with an integer trainer.val_check_interval "
                          f"({trainer.val_check_interval} batches): give it as a fraction of the epoch (e.g. 0.5) "
                          "or set train.steps_per_execution=1")
    return k


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists stay values."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
