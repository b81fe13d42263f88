"""Train one configuration: ``python -m dlzoo.train [group=option ...] [key=value ...]`` (or ``dlzoo-train``).

Examples::

    python -m dlzoo.train                                   # LeNet-5 on digits (conf/config.yaml)
    python -m dlzoo.train experiment=mnist1d_cnn1d optimizer.lr=3e-3
    python -m dlzoo.train model=mlp regularizer=[l2,dropout] trainer.max_epochs=5
    python -m dlzoo.train --multirun model=mlp,lenet5 optimizer=adam,sgd
    python -m dlzoo.train --cfg job                          # print the composed config, train nothing

Every run is one MLflow run (params, curves, test metrics, plots, checkpoint and model); checkpoints and
``run_info.json`` go to ``output_dir`` (default: the Hydra run folder).
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from dlzoo.errors import DlzooError
from dlzoo.paths import conf_dir

QUIET_WARNINGS = (
    ".*does not have many workers.*",
    ".*LitLogger.*",
    ".*litlogger.*",
    ".*Checkpoint directory .* exists and is not empty.*",
    ".*The number of training batches .* is smaller than the logging interval.*",
    ".*torch.ao.quantization.*",
    ".*Starting from v1.9.0, `tensorboardX` has been removed.*",
)


def quiet() -> None:
    import logging

    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)


def hydra_output_dir() -> tuple[Path, list[str]]:
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    return Path(hc.runtime.output_dir), list(hc.overrides.task)


def run(cfg: DictConfig, output_dir: Path, overrides: list[str]) -> dict:
    """Train, test and record one configuration. Returns the summary also written to run_info.json."""
    from dlzoo.config import validate

    validate(cfg)  # before anything heavy is imported or built
    quiet()
    import lightning.pytorch as pl
    import mlflow
    import torch
    from lightning.pytorch.loggers import MLFlowLogger
    from lightning.pytorch.trainer.states import TrainerStatus

    from dlzoo import builders
    from dlzoo.config import flatten
    from dlzoo.tracking import mlflow_utils as mu
    from dlzoo.training.history import EpochHistory

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = builders.build_datamodule(cfg)
    dm.setup()  # fails here, before an MLflow run exists, when splits are missing
    net = builders.build_network(cfg, dm.input_shape, dm.num_classes)
    task = builders.build_task(cfg, net, dm.num_classes)
    n_params = builders.count_parameters(net)
    n_flops = builders.count_flops(net, dm.input_shape)

    output_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = output_dir / "checkpoints"
    uri = mu.tracking_uri(cfg.logger.get("tracking_uri"))
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    exp_id = mu.get_or_create_experiment(client, cfg.logger.experiment_name)
    tags = mu.provenance_tags(overrides) | {
        "dlzoo.task": cfg.task, "dlzoo.dataset": cfg.data.name, "dlzoo.model": cfg.model.name,
        "dlzoo.name": str(cfg.get("name") or ""), "dlzoo.output_dir": str(output_dir.resolve()),
    }
    active = mlflow.start_run(experiment_id=exp_id, run_name=mu.run_name(cfg), tags=tags)
    run_id = active.info.run_id
    resolved = OmegaConf.to_container(cfg, resolve=True)
    info = {"run_id": run_id, "tracking_uri": uri, "experiment": cfg.logger.experiment_name,
            "run_name": active.info.run_name, "output_dir": str(output_dir), "num_params": n_params,
            "flops": n_flops}
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(resolved))

    trainer = None
    error: BaseException | None = None
    try:
        mlflow.log_params({k: str(v)[:6000] for k, v in flatten(resolved).items()})
        mlflow.log_metrics({"model/num_params": n_params, "model/flops": n_flops})
        mlflow.log_artifact(str(output_dir / "config.yaml"))
        logger = MLFlowLogger(experiment_name=cfg.logger.experiment_name, tracking_uri=uri, run_id=run_id)
        history = EpochHistory()
        trainer = pl.Trainer(**OmegaConf.to_container(cfg.trainer, resolve=True), logger=logger,
                             callbacks=[*builders.build_callbacks(cfg, ckpt_dir), history],
                             default_root_dir=str(output_dir))
        resume = cfg.train.get("resume")
        if resume == "last":
            resume = str(ckpt_dir / "last.ckpt")
        started = time.perf_counter()
        trainer.fit(task, datamodule=dm, ckpt_path=resume)
        fit_s = time.perf_counter() - started
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        info["best_ckpt"] = best or None
        info["last_ckpt"] = str(ckpt_dir / "last.ckpt") if (ckpt_dir / "last.ckpt").exists() else None
        info["epochs"] = trainer.current_epoch
        # wall time of fit (training + validation) per epoch run in this process (a resumed run counts its own)
        info["epoch_time_s"] = fit_s / max(1, len(history.rows))
        mlflow.log_metric("time/epoch_s", info["epoch_time_s"])
        history.write_csv(output_dir / "history.csv")
        _log_run_artifacts(cfg, task, trainer, history, output_dir, info)
        if cfg.train.test and not cfg.trainer.get("fast_dev_run"):
            results = trainer.test(task, datamodule=dm, ckpt_path=best or None, verbose=False)[0]
            info["test"] = {k: float(v) for k, v in results.items()}
            log_confusion_matrix(task.test_confmat.compute().cpu().numpy(), output_dir, cfg.data.name)
        (output_dir / "run_info.json").write_text(json.dumps(info, indent=2))
    except BaseException as exc:  # noqa: BLE001 -- every way out must close the MLflow run
        error = exc
        raise
    finally:
        # Lightning turns Ctrl-C inside fit/test into SystemExit(1) after marking the trainer INTERRUPTED
        # (it marks every exception INTERRUPTED, so the SystemExit is what tells a Ctrl-C apart).
        interrupted = (isinstance(error, SystemExit) and trainer is not None
                       and trainer.state.status == TrainerStatus.INTERRUPTED)
        status = mu.end_status(error, interrupted)
        if error is not None:
            mlflow.set_tag("dlzoo.error", f"{type(error).__name__}: {error}"[:5000])
        mlflow.end_run(status)
        info["status"] = status
        if error is not None:
            print(f"MLflow run {run_id} ended {status}; checkpoints kept in {ckpt_dir}", file=sys.stderr)
    return info


def _log_run_artifacts(cfg, task, trainer, history, output_dir: Path, info: dict) -> None:
    import mlflow
    import torch

    from dlzoo.report.plots import learning_curves

    curve = learning_curves(history.series(), output_dir / "plots" / "learning_curves.png",
                            title=f"{info['run_name']}")
    mlflow.log_artifact(str(curve), "plots")
    mlflow.log_artifact(str(output_dir / "history.csv"))
    if info.get("best_ckpt"):
        mlflow.log_artifact(info["best_ckpt"], "checkpoints")
    if cfg.train.log_model and not cfg.trainer.get("fast_dev_run"):
        import mlflow.pytorch

        best = info.get("best_ckpt")
        if best:
            task.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
        net = task.net.cpu().eval()
        example = trainer.datamodule.datasets["val"].tensors[0][:2].numpy()
        mlflow.pytorch.log_model(net, name="model", input_example=example,
                                 pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])


def log_confusion_matrix(cm, output_dir: Path, dataset: str) -> Path:
    import mlflow

    from dlzoo.report.plots import confusion_matrix

    path = confusion_matrix(cm, output_dir / "plots" / "confusion_matrix.png", title=f"{dataset}: test confusion matrix "
                            f"(acc {cm.trace() / max(cm.sum(), 1):.3f})")
    mlflow.log_artifact(str(path), "plots")
    return path


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def hydra_main(cfg: DictConfig) -> float | None:
    hydra_dir, overrides = hydra_output_dir()
    output_dir = Path(cfg.output_dir) if cfg.get("output_dir") else hydra_dir
    try:
        info = run(cfg, output_dir, overrides)
    except DlzooError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    test_acc = (info.get("test") or {}).get("test/acc")
    print(f"run {info['run_name']} ({info['run_id']}) {info['status']}"
          + (f": test/acc={test_acc:.4f}" if test_acc is not None else ""))
    return test_acc  # Hydra sweepers (e.g. Optuna) read the return value


def main() -> None:
    hydra_main()


if __name__ == "__main__":
    main()
