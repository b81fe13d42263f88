"""Knowledge distillation: the loss, and the recipe that trains a student from a pipeline teacher next to
the same student trained from scratch with the same budget (same config, seed and epochs; only the loss
differs), both as full dlzoo training runs."""

from __future__ import annotations

import copy
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def student_configs(teacher_cfg: DictConfig, teacher_dir: Path, recipe: DictConfig, experiment: str,
                    run_prefix: str) -> dict[str, DictConfig]:
    """The distilled and from-scratch student configs: the teacher's config (data, optimizer, trainer,
    callbacks) with the student model, ``recipe.epochs`` epochs, and the runs in the teacher's MLflow
    experiment. The student sees the teacher's inputs (its image size is carried over).

    ``recipe.student.config`` (dotted key -> value) changes the teacher's settings for both students alike,
    e.g. ``regularizer.augment.translate: 0`` to train them without the teacher's augmentation (Hinton et
    al.'s MNIST setting); a key the teacher's config lacks is refused. ``recipe.seed`` (null = the teacher's)
    seeds both students."""
    from dlzoo.errors import ConfigError
    from dlzoo.paths import conf_dir

    model = OmegaConf.merge(OmegaConf.load(conf_dir() / "model" / f"{recipe.student.model}.yaml"),
                            recipe.student.get("overrides") or {})
    image_size = teacher_cfg.model.get("image_size") or teacher_cfg.data.get("image_size")
    base = copy.deepcopy(teacher_cfg)
    base.model = model
    base.model.pop("image_size", None)
    base.data.image_size = image_size
    base.train.test = False
    if recipe.get("epochs"):
        # the saved config is resolved: a schedule sized by the teacher's epochs (cosine T_max) follows the new count
        if (base.get("scheduler") or {}).get("T_max") == base.trainer.max_epochs:
            base.scheduler.T_max = int(recipe.epochs)
        base.trainer.max_epochs = int(recipe.epochs)
    missing = object()
    for key, value in (recipe.student.get("config") or {}).items():
        if OmegaConf.select(base, key, default=missing) is missing:
            raise ConfigError(f"compress student.config key {key!r} is not in the teacher's config "
                              f"({teacher_dir / 'config.yaml'}); give a dotted key it has, e.g. "
                              "regularizer.augment.translate")
        OmegaConf.update(base, key, value, merge=False)
    if recipe.get("seed") is not None:
        base.seed = int(recipe.seed)
    base.logger.experiment_name = experiment
    out = {}
    for role in ("distilled", "scratch"):
        cfg = copy.deepcopy(base)
        cfg.logger.run_name = f"{run_prefix}-{role}-{recipe.student.model}"
        if role == "distilled":
            cfg.task = "distill"
            cfg.distill = {"teacher": str(teacher_dir.resolve()), "temperature": recipe.temperature,
                           "alpha": recipe.alpha}
        else:
            cfg.task = "classify"
        out[role] = cfg
    return out
