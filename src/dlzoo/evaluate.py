"""Evaluate a trained run on a split and record the result: ``python -m dlzoo.evaluate RUN_DIR``.

RUN_DIR is a training output folder (it holds ``run_info.json``, ``config.yaml`` and ``checkpoints/``).
The best checkpoint is tested on the chosen split; the metrics go to the run's MLflow run
(``test/*`` for the test split), to a metrics JSON for ``dvc metrics show``, and the predictions to
``artifacts/eval/<run>/predictions.csv`` for ``dvc plots show`` (a confusion matrix; actual vs predicted values
for regression, where a linear model is also compared with the closed-form least-squares fit); the
confusion-matrix plot goes to MLflow. A test-split evaluation registers the model in the MLflow Model
Registry as ``<dataset>-<model>`` and moves its ``@best`` alias when the score is the best so far.
RUN_DIR may also be a registered model, ``models:/<name>@best`` (or ``/latest``, ``/<version>``).

    python -m dlzoo.evaluate artifacts/runs/digits_lenet5 --metrics metrics/digits_lenet5.json
    python -m dlzoo.evaluate outputs/2026-11-22/18-00-00 --split val
    python -m dlzoo.evaluate models:/digits-lenet5@best --split val
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dlzoo.errors import DlzooError
from dlzoo.paths import bind, project_root, report_json
from dlzoo.tracking.runs import checkpoint, load_config, load_run

if TYPE_CHECKING:
    from omegaconf import DictConfig


def load_source(source: str | Path, root: Path | None = None) -> tuple[dict, "DictConfig", Path | None]:
    """(run_info, training config, run folder or None) of a training run folder or a registered
    ``models:/<name>@best`` / ``models:/<name>/<version>`` (whose source run's config comes from MLflow). The
    config's paths are bound to the project at ``root`` (default: the one the command runs in)."""
    from omegaconf import OmegaConf

    if not str(source).startswith("models:/"):
        run_dir = Path(source)
        return load_run(run_dir), bind(load_config(run_dir), root), run_dir
    import mlflow

    from dlzoo.tracking.mlflow_utils import tracking_uri
    from dlzoo.tracking.registry import resolve

    uri = tracking_uri(None, root)
    client = mlflow.MlflowClient(uri)
    ref = resolve(client, str(source))
    run = client.get_run(ref.run_id)
    config = mlflow.artifacts.download_artifacts(run_id=ref.run_id, artifact_path="config.yaml", tracking_uri=uri)
    info = {"run_id": ref.run_id, "tracking_uri": uri, "experiment": client.get_experiment(run.info.experiment_id).name,
            "run_name": run.info.run_name, "model_uri": ref.uri, "registered": f"{ref.name}/{ref.version}",
            "num_params": int(run.data.metrics.get("model/num_params", 0)) or None,
            "flops": int(run.data.metrics.get("model/flops", 0)) or None}
    return info, bind(OmegaConf.load(config), root), None


def load_task(source: str | Path, ckpt: str | None = None, root: Path | None = None):
    """(run_info, config, datamodule set up, task with the trained weights in eval mode) of a training run
    folder (its best checkpoint, or ``ckpt``) or of a registered model (``models:/...``)."""
    import lightning.pytorch as pl
    import torch

    from dlzoo import builders

    info, cfg, run_dir = load_source(source, root)
    pl.seed_everything(cfg.seed, verbose=False)
    dm = builders.build_datamodule(cfg)
    dm.setup()
    net = builders.build_network(cfg, dm.input_shape, dm.num_classes)
    task = builders.build_task(cfg, net, dm.num_classes)
    if run_dir is None:  # a registered model: its weights come from the registry
        import mlflow.pytorch

        # The logged model is a torch.export program (MLflow 3's default): a graph that cannot switch to
        # train/eval mode, so its weights go into a freshly built network (same names, strictly matched).
        from dlzoo.tracking.model import network_state

        loaded = mlflow.pytorch.load_model(info["model_uri"], map_location="cpu")
        net.load_state_dict(network_state(loaded, info["model_uri"]))
        task.restore_from_registry(dm)
    else:
        ckpt = checkpoint(info, run_dir, ckpt, fix="re-train with `dvc repro` or pass --ckpt")
        task.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"])
    task.eval()
    return info, cfg, dm, task


def split_loader(dm, split: str):
    import torch

    if split == "train":  # unshuffled
        return torch.utils.data.DataLoader(dm.datasets["train"], batch_size=dm.batch_size)
    return {"val": dm.val_dataloader, "test": dm.test_dataloader}[split]()


def test_split(task, dm, split: str, trainer_cfg) -> dict[str, float]:
    """The task's test metrics on one split, keyed ``<split>/<metric>``, on one device of the run's
    configured accelerator (``trainer_cfg``: its ``trainer`` config) at its precision."""
    from dlzoo.training.accelerators import single_device_trainer

    trainer = single_device_trainer(trainer_cfg)
    results = trainer.test(task, dataloaders=split_loader(dm, split), verbose=False)[0]
    return {k.replace("test/", f"{split}/"): float(v) for k, v in results.items()}


def evaluate(run_dir: Path | str, out_dir: Path, split: str = "test", ckpt: str | None = None,
             register: bool = True, root: Path | None = None) -> dict:
    import mlflow

    from dlzoo.training.accelerators import device

    info, cfg, dm, task = load_task(run_dir, ckpt, root)
    metrics = test_split(task, dm, split, cfg.trainer)
    task.to(device(cfg.trainer))  # the Trainer hands the module back on the CPU; the outputs are computed on the device
    name = cfg.get("name") or Path(str(run_dir)).name
    # the task's (actual, predicted) pairs, more figures and plots (dlzoo.tasks.base.EvalOutputs)
    outputs = task.evaluation_outputs(dm, split_loader(dm, split), split, out_dir, name)
    metrics |= outputs.metrics
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "predictions.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["actual", "predicted"])
        w.writerows(zip(outputs.labels.tolist(), outputs.preds.tolist()))

    mlflow.set_tracking_uri(info["tracking_uri"])
    with mlflow.start_run(run_id=info["run_id"]):  # reopen the training run; ends as FINISHED
        mlflow.log_metrics(metrics)
        for path in task.test_figures(out_dir, cfg.data.name) if split == "test" else []:
            mlflow.log_artifact(str(path), "plots")
        mlflow.log_artifact(str(out_dir / "predictions.csv"))
        for path in outputs.figures:
            mlflow.log_artifact(str(path), "plots")
        if outputs.extra.get("detections_plot"):
            mlflow.log_artifact(outputs.extra["detections_plot"], "plots")
    registered = info.get("registered")
    score_key = task.score_key if task.registers and task.score_key in metrics else None
    if register and split == "test" and info.get("model_uri") and not registered and score_key:
        from dlzoo.tracking.registry import register as register_version, registered_name

        model_name = registered_name(cfg.data.name, cfg.model.name)
        version, best = register_version(mlflow.MlflowClient(info["tracking_uri"]), model_name, info["model_uri"],
                                         info["run_id"], score_key, metrics[score_key])
        registered = f"{model_name}/{version}" + (" @best" if best else "")
    return {"name": name, "run_id": info["run_id"], "experiment": info["experiment"],
            "task": cfg.task, "model": cfg.model.name, "dataset": cfg.data.name,
            "num_params": info.get("num_params"), "flops": info.get("flops"), "epoch_time_s": info.get("epoch_time_s"),
            "epochs": info.get("epochs"), "registered": registered, **metrics, **outputs.extra}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", help="a training output folder (holds run_info.json), or a registered model: "
                    "models:/<dataset>-<model>@best, models:/<name>/latest, models:/<name>/<version>")
    ap.add_argument("--split", choices=["train", "val", "test"], default="test")
    ap.add_argument("--ckpt", default=None, help="checkpoint to evaluate (default: the run's best)")
    ap.add_argument("--metrics", type=Path, default=None, help="write the metrics JSON here")
    ap.add_argument("--no-register", dest="register", action="store_false",
                    help="do not register the model in the MLflow Model Registry (default: register test results)")
    ap.add_argument("--out-dir", type=Path, default=None,
                    help="folder for predictions.csv and plots (default: artifacts/eval/<run folder name>)")
    args = ap.parse_args(argv)
    from dlzoo.console import quiet

    quiet()
    try:
        name = (args.run_dir[len("models:/"):].replace("/", "-").replace("@", "-")
                if args.run_dir.startswith("models:/") else Path(args.run_dir).name)
        out_dir = args.out_dir or project_root() / "artifacts" / "eval" / name
        summary = evaluate(args.run_dir, out_dir, args.split, args.ckpt, args.register)
    except DlzooError as exc:
        sys.exit(f"error: {exc}")
    report_json(summary, args.metrics)


if __name__ == "__main__":
    main()
