"""A training run's folder, read back: ``run_info.json``, ``config.yaml`` and the checkpoint to use.

Every consumer of a trained run (evaluation, compression, distillation's teacher, comparisons, prediction,
sample quality) reads it through here, so the rules live once: a missing folder names the command that makes
it, and the checkpoint is the best one (the checkpoint callback's monitor) or else the last one.
This module sits below the builders: it reads files and never builds a network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

from dlzoo.errors import DataError


class RunInfo(TypedDict, total=False):
    """``run_info.json``: what ``dlzoo.train`` records about a run in its folder (rank 0, at the end)."""

    run_id: str | None  # the MLflow run (None on DDP ranks other than 0)
    tracking_uri: str
    experiment: str
    run_name: str | None
    output_dir: str
    num_params: int
    flops: int
    ui_url: str | None
    score_key: str | None  # the task's ranking figure, e.g. test/acc
    best_ckpt: str | None  # the checkpoint callback's best, or None without a monitor
    best_score: dict[str, float]  # {monitor: value} of the best checkpoint
    last_ckpt: str | None
    epochs: int
    epoch_time_s: float
    startup_s: float  # from the process's start to its first training batch (imports, data, MLflow run)
    test: dict[str, float]  # test figures (train.test)
    model_uri: str  # the logged MLflow model (train.log_model)
    status: str  # FINISHED / FAILED / KILLED


def load_run(run_dir: Path) -> RunInfo:
    """The run's ``run_info.json`` (run id, tracking URI, checkpoints, test figures ...)."""
    info_path = Path(run_dir) / "run_info.json"
    if not info_path.exists():
        raise DataError(f"{info_path} not found: train first, e.g. `python -m dlzoo.train output_dir={run_dir}`"
                        " or `dvc repro`")
    return json.loads(info_path.read_text())


def load_config(run_dir: Path):
    """The run's resolved training config (``config.yaml``)."""
    from omegaconf import OmegaConf

    return OmegaConf.load(Path(run_dir) / "config.yaml")


def checkpoint(info: RunInfo | dict[str, Any], run_dir: Path, ckpt: str | Path | None = None,
               fix: str = "re-train it with `dvc repro`") -> str:
    """``ckpt`` if given, else the run's best checkpoint, else its last one; refused when the file is gone."""
    path = ckpt or info.get("best_ckpt") or info.get("last_ckpt")
    if not path or not Path(path).exists():
        raise DataError(f"checkpoint {path!r} of {run_dir} not found: {fix}")
    return str(path)


def net_state(ckpt: str | Path):
    """The network's weights from a Lightning checkpoint of any dlzoo task (the task holds it as ``net``)."""
    import torch

    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
