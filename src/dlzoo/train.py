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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from dlzoo.console import quiet
from dlzoo.errors import DlzooError
from dlzoo.paths import bind, conf_dir, paths_of, unbind
from dlzoo.tracking.runs import RunInfo


def hydra_output_dir() -> tuple[Path, list[str]]:
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    return Path(hc.runtime.output_dir), list(hc.overrides.task)


@dataclass
class Job:
    """The pieces of one training job, built from its config before any MLflow run exists."""
    cfg: DictConfig
    output_dir: Path
    dm: Any
    net: Any
    task: Any
    resume: str | None  # the checkpoint to resume from (checked), or None
    n_params: int
    n_flops: int

    @property
    def ckpt_dir(self) -> Path:
        return self.output_dir / "checkpoints"


def run(cfg: DictConfig, output_dir: Path, overrides: list[str], parent_run_id: str | None = None,
        extra_tags: dict[str, str] | None = None) -> RunInfo:
    """Train, test and record one configuration. Returns the summary also written to run_info.json.

    Under DDP every rank calls this; only rank 0 records to MLflow and writes files. ``parent_run_id`` (or
    ``mlflow.parentRunId`` in ``extra_tags``) makes the run a child of a sweep, search or comparison.
    However it ends (an error, Ctrl-C, SIGTERM), its MLflow run ends FINISHED, FAILED or KILLED, never
    RUNNING, and its checkpoints stay.
    """
    from dlzoo.tracking import mlflow_utils as mu

    job = build(cfg, output_dir)
    record, info, resumed = _start_record(job, overrides, parent_run_id, extra_tags)
    made: dict[str, Any] = {}  # the trainer and logger once made: closing the run flushes the logger
    with mu.ending(lambda status, error: _close(record, info, made, job.ckpt_dir, status, error)):
        _log_inputs(job, record, resumed)
        trainer = _fit(job, record, info, made)
        _test(job, record, info, trainer)
        if record.rank0:
            (output_dir / "run_info.json").write_text(json.dumps(info, indent=2))
    return info


def build(cfg: DictConfig, output_dir: Path) -> Job:
    """Validate ``cfg`` and build the job's data, network and task; every refusal happens here, before an
    MLflow run exists (bad values, a missing GPU, missing splits, a checkpoint that does not fit)."""
    from dlzoo.config import validate

    validate(cfg)  # before anything heavy is imported or built
    from dlzoo.training.accelerators import check_trainer, weights_dtype

    check_trainer(cfg.trainer)  # a missing GPU (or too few) fails here, before any data is built
    import lightning.pytorch as pl

    from dlzoo import builders
    from dlzoo.tracking.environment import pin_threads
    from dlzoo.training import multistep

    pin_threads(OmegaConf.select(cfg, "runtime.threads"))  # before anything is built (runtime.threads)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = builders.build_datamodule(cfg)
    dm.setup()  # fails here, before an MLflow run exists, when splits are missing
    net = builders.build_network(cfg, dm.input_shape, dm.num_classes)
    task = builders.build_task(cfg, net, dm.num_classes)
    multistep.setup(cfg, dm, task)  # train.steps_per_execution
    resume = resume_checkpoint(cfg.train.get("resume"), output_dir / "checkpoints", task)
    if cfg.train.get("channels_last"):
        import torch

        # NHWC: the weights here, the image batches in the datamodule (both, so no conv converts either back)
        net.to(memory_format=torch.channels_last)
        dm.channels_last = True
    if cfg.train.get("compile"):
        net.compile()  # in place: state_dict keys stay as they are (no `_orig_mod.` prefix in checkpoints)
    n_flops = builders.count_flops(net, builders.example_input(cfg, net, dm.input_shape))
    if not cfg.train.get("compile"):
        # Lightning's model summary counts FLOPs (and shows in/out sizes) on this input; without one its
        # FLOPs column reads 0 for every layer. In the weights' dtype under a "-true" precision: the summary
        # forwards it as given, where batches are converted by the precision plug-in.
        task.example_input_array = builders.example_input(cfg, net, dm.input_shape, weights_dtype(cfg.trainer.precision))
    return Job(cfg, output_dir, dm, net, task, resume, builders.count_parameters(net), n_flops)


def _start_record(job: Job, overrides: list[str], parent_run_id: str | None, extra_tags: dict[str, str] | None):
    """(the job's MLflow run, started or reopened when resuming; the run summary so far; resumed?)"""
    from lightning.pytorch.utilities import rank_zero_only

    from dlzoo.tracking import mlflow_utils as mu
    from dlzoo.tracking.environment import environment_tags

    cfg, output_dir = job.cfg, job.output_dir
    root = paths_of(cfg)[0]
    rank0 = rank_zero_only.rank == 0
    uri = mu.tracking_uri(cfg.logger.get("tracking_uri"), root)
    if rank0:
        mu.check_reachable(uri)  # an unreachable server fails now, not after an hour of training
    output_dir.mkdir(parents=True, exist_ok=True)
    run_file = output_dir / "mlflow_run.json"
    previous = json.loads(run_file.read_text()) if job.resume and run_file.exists() else {}
    tags = mu.provenance_tags(overrides, root) | {
        "dlzoo.task": cfg.task, "dlzoo.dataset": cfg.data.name, "dlzoo.model": cfg.model.name,
        "dlzoo.name": str(cfg.get("name") or ""), "dlzoo.output_dir": str(output_dir.resolve()),
    } | environment_tags(root) | (extra_tags or {})
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    record = mu.JobRun(uri, rank0)
    record.start(cfg.logger.experiment_name, mu.run_name(cfg), tags,
                 reuse_run_id=previous.get("run_id") if previous.get("tracking_uri") == uri else None,
                 system_metrics_s=cfg.logger.system_metrics_interval_s if cfg.logger.get("system_metrics") else None)
    info: RunInfo = {"run_id": record.run_id, "tracking_uri": uri, "experiment": cfg.logger.experiment_name,
            "run_name": record.run_name, "output_dir": str(output_dir), "num_params": job.n_params,
            "flops": job.n_flops, "ui_url": record.ui_url() if rank0 else None,
            "score_key": getattr(job.task, "score_key", None)}
    if rank0:
        run_file.write_text(json.dumps({"run_id": record.run_id, "tracking_uri": uri}))
        (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(unbind(OmegaConf.to_container(cfg, resolve=True))))
    return record, info, bool(previous)


def _log_inputs(job: Job, record, resumed: bool) -> None:
    """Params (the composed job config), the data splits as MLflow datasets, size and FLOPs, the config file."""
    from dlzoo.tracking import mlflow_utils as mu

    if not resumed:
        record.log_params(mu.job_params(unbind(OmegaConf.to_container(job.cfg, resolve=True))))
        if record.rank0:
            from dlzoo.tracking.datasets import log_split_inputs

            log_split_inputs(job.dm.splits_dir / job.dm.name, job.cfg.data.name, mu.data_version(paths_of(job.cfg)[0]))
    record.log_metrics({"model/num_params": job.n_params, "model/flops": job.n_flops})
    record.log_artifact(str(job.output_dir / "config.yaml"))


def _fit(job: Job, record, info: dict, made: dict):
    """Fit with Lightning, logging to the job's MLflow run; the checkpoints and epoch figures go into ``info``."""
    import lightning.pytorch as pl

    from dlzoo import builders
    from dlzoo.tracking.logger import BufferedMLFlowLogger
    from dlzoo.training import multistep
    from dlzoo.training.history import EpochHistory

    cfg = job.cfg
    # metrics are buffered and written every logger.flush_every_s seconds (dlzoo.tracking.logger), and
    # synchronous=False hands each write to MLflow's background thread, so a training step never waits on
    # the store (both flushed before the run ends). Rank 0 only: the logger's MLflow client opens the store,
    # and ranks started together by torchrun or srun would race on it (Lightning logs on rank 0 alone anyway).
    made["logger"] = BufferedMLFlowLogger(
        experiment_name=cfg.logger.experiment_name, tracking_uri=info["tracking_uri"], run_id=record.run_id,
        synchronous=False, flush_every_s=cfg.logger.get("flush_every_s", 5.0)) if record.rank0 else None
    history = EpochHistory()
    trainer_kwargs = multistep.trainer_kwargs(job.task, OmegaConf.to_container(cfg.trainer, resolve=True))
    trainer_kwargs["profiler"] = builders.build_profiler(trainer_kwargs.get("profiler"), job.output_dir / "profiler")
    callbacks = [*_rank_callbacks(builders.build_callbacks(cfg, job.ckpt_dir), record.rank0), history]
    trainer = made["trainer"] = pl.Trainer(**trainer_kwargs, logger=made["logger"] or False, callbacks=callbacks,
                                           default_root_dir=str(job.output_dir))
    if made["logger"] is not None and getattr(job.task, "multistep_k", 1) > 1:  # curves over optimizer steps
        made["logger"].step_map = multistep.step_map(trainer)
    record.log_param("data.global_batch_size", cfg.data.batch_size * trainer.world_size)
    started = time.perf_counter()
    trainer.fit(job.task, datamodule=job.dm, ckpt_path=job.resume, weights_only=True)
    fit_s = time.perf_counter() - started
    ckpt_cb = trainer.checkpoint_callback
    info["best_ckpt"] = (ckpt_cb.best_model_path if ckpt_cb is not None else "") or None
    if ckpt_cb is not None and ckpt_cb.best_model_score is not None:  # what a search optimises
        info["best_score"] = {ckpt_cb.monitor: float(ckpt_cb.best_model_score)}
    info["last_ckpt"] = (ckpt_cb.last_model_path if ckpt_cb is not None else "") or None
    info["epochs"] = trainer.current_epoch
    # wall time of fit (training + validation) per epoch run in this process (a resumed run counts its own)
    info["epoch_time_s"] = fit_s / max(1, len(history.rows))
    record.log_metric("time/epoch_s", info["epoch_time_s"])
    if history.startup_s is not None:  # from the shell to the first training step (benchmarks/startup.py)
        info["startup_s"] = history.startup_s
        record.log_metric("time/startup_s", history.startup_s)
    if record.rank0:
        history.write_csv(job.output_dir / "history.csv")
        _log_run_artifacts(cfg, job.task, trainer, history, job.output_dir, info)
    if record.rank0 and trainer_kwargs["profiler"] is not None:  # Lightning's profiler reports (debug=profiler)
        record.log_artifacts(str(job.output_dir / "profiler"), "profiler")
    return trainer


def _test(job: Job, record, info: dict, trainer) -> None:
    """The best checkpoint on the test split (train.test), into ``info["test"]`` and the MLflow run."""
    cfg = job.cfg
    if not cfg.train.test or cfg.trainer.get("fast_dev_run"):
        return
    results = trainer.test(job.task, datamodule=job.dm, ckpt_path=info["best_ckpt"], verbose=False,
                           weights_only=True)[0]
    info["test"] = {k: float(v) for k, v in results.items()}
    for path in job.task.test_figures(job.output_dir, cfg.data.name) if record.rank0 else []:
        record.log_artifact(str(path), "plots")


def _close(record, info: dict, made: dict, ckpt_dir: Path, status: str, error: BaseException | None) -> None:
    """End the job's MLflow run with ``status``: the error as a tag, the metrics still buffered written first
    (a store error there must not leave the run RUNNING)."""
    if error is not None:
        record.set_tag("dlzoo.error", f"{type(error).__name__}: {error}"[:5000])
    if made.get("logger") is not None:
        try:
            made["logger"].flush()
        except Exception as exc:  # noqa: BLE001
            print(f"warning: could not write the last metrics to MLflow: {exc}", file=sys.stderr)
    record.flush()
    record.end(status)
    info["status"] = status
    if error is not None and record.rank0:
        print(f"MLflow run {record.run_id} ended {status}; checkpoints kept in {ckpt_dir}", file=sys.stderr)


def _rank_callbacks(callbacks: list, rank0: bool) -> list:
    """The callbacks of one rank: the learning-rate monitor only logs, and needs the logger only rank 0 has."""
    from lightning.pytorch.callbacks import LearningRateMonitor

    return [c for c in callbacks if rank0 or not isinstance(c, LearningRateMonitor)]


def resume_checkpoint(resume: str | None, ckpt_dir: Path, task) -> str | None:
    """Resolve ``train.resume`` (null, "last" or a path) and check the checkpoint before training starts:
    it must exist, load safely (``weights_only``) and fit the network."""
    if not resume:
        return None
    import torch

    from dlzoo.errors import DataError

    path = Path(ckpt_dir / "last.ckpt" if resume == "last" else resume)
    fix = "pass another train.resume, or train.resume=null to start from scratch"
    if not path.exists():
        raise DataError(f"checkpoint {path} (train.resume={resume}) not found: {fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as exc:  # truncated zip, pickle with foreign objects, not a Lightning checkpoint ...
        raise DataError(f"checkpoint {path} is corrupt or not a Lightning checkpoint ({type(exc).__name__}: "
                        f"{str(exc)[:300]}): {fix}") from None
    mine = task.state_dict()
    mismatched = [k for k in mine if k not in state or state[k].shape != mine[k].shape]
    if mismatched or set(state) - set(mine):
        raise DataError(f"checkpoint {path} does not fit this model ({len(mismatched)} missing or differently "
                        f"shaped tensors, e.g. {mismatched[:3]}): {fix}")
    return str(path)


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
        from dlzoo.tracking.model import log_model

        best = info.get("best_ckpt")
        if best:
            task.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
        net = task.net.cpu().eval()
        example = (net.example_input(2) if hasattr(net, "example_input")  # a generator takes latent codes
                   else trainer.datamodule.datasets["val"].tensors[0][:2]).numpy()
        # a classifier takes raw samples: its preprocessing is logged with it (dlzoo.tracking.model)
        logged = log_model(net, task.raw_input_model(trainer.datamodule), example,
                           pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
        info["model_uri"] = logged.model_uri  # registered by the test evaluation (dlzoo.evaluate, dlzoo.tracking.registry)


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def hydra_main(cfg: DictConfig) -> float | None:
    quiet()
    bind(cfg)  # the project this command runs in: every path below comes from cfg.paths
    hydra_dir, overrides = hydra_output_dir()
    output_dir = Path(cfg.output_dir) if cfg.get("output_dir") else hydra_dir
    from dlzoo.tracking.sweep import parent_run_id

    try:
        if cfg.get("hparams_search"):  # hparams_search=<name>: an Optuna search, one child run per trial
            from dlzoo.search import search

            return search(cfg, output_dir, overrides, train=run)["best_value"]
        info = run(cfg, output_dir, overrides, parent_run_id=parent_run_id())
        if cfg.train.get("metrics") and info["run_id"] is not None:  # rank 0 evaluates, as dlzoo.evaluate does
            from dlzoo.evaluate import evaluate
            from dlzoo.paths import report_json

            eval_dir = Path(cfg.train.get("eval_dir") or output_dir / "eval")
            report_json(evaluate(output_dir, eval_dir, root=paths_of(cfg)[0]), Path(cfg.train.metrics))
    except DlzooError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except SystemExit as exc:
        # Lightning stops at the end of the epoch on SIGTERM by raising SIGTERMException, a SystemExit whose
        # code is None (= success); a terminated job must exit non-zero (128 + SIGTERM, like a shell).
        if type(exc).__name__ == "SIGTERMException":
            sys.exit(143)
        raise
    test = info.get("test") or {}
    key = info.get("score_key")
    if info["run_id"] is None:  # a DDP rank other than 0: rank 0 reports
        return test.get(key)
    print(f"run {info['run_name']} ({info['run_id']}) {info['status']}"
          + (f": {key}={test[key]:.4f}" if key in test else "") + f"\n  MLflow UI: {info['ui_url']}")
    return test.get(key)  # Hydra sweepers read the return value


def main() -> None:
    hydra_main()


if __name__ == "__main__":
    main()
