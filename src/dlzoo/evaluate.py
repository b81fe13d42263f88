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
from dlzoo.paths import project_root, report_json
from dlzoo.runs import checkpoint, load_config, load_run

if TYPE_CHECKING:
    from omegaconf import DictConfig


def load_source(source: str | Path) -> tuple[dict, "DictConfig", Path | None]:
    """(run_info, training config, run folder or None) of a training run folder or a registered
    ``models:/<name>@best`` / ``models:/<name>/<version>`` (whose source run's config comes from MLflow)."""
    from omegaconf import OmegaConf

    if not str(source).startswith("models:/"):
        run_dir = Path(source)
        return load_run(run_dir), load_config(run_dir), run_dir
    import mlflow

    from dlzoo.tracking.mlflow_utils import tracking_uri
    from dlzoo.tracking.registry import resolve

    uri = tracking_uri()
    client = mlflow.MlflowClient(uri)
    ref = resolve(client, str(source))
    run = client.get_run(ref.run_id)
    config = mlflow.artifacts.download_artifacts(run_id=ref.run_id, artifact_path="config.yaml", tracking_uri=uri)
    info = {"run_id": ref.run_id, "tracking_uri": uri, "experiment": client.get_experiment(run.info.experiment_id).name,
            "run_name": run.info.run_name, "model_uri": ref.uri, "registered": f"{ref.name}/{ref.version}",
            "num_params": int(run.data.metrics.get("model/num_params", 0)) or None,
            "flops": int(run.data.metrics.get("model/flops", 0)) or None}
    return info, OmegaConf.load(config), None


def load_task(source: str | Path, ckpt: str | None = None):
    """(run_info, config, datamodule set up, task with the trained weights in eval mode) of a training run
    folder (its best checkpoint, or ``ckpt``) or of a registered model (``models:/...``)."""
    import lightning.pytorch as pl
    import torch

    from dlzoo import builders

    info, cfg, run_dir = load_source(source)
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
        if getattr(dm, "target_stats", None) and hasattr(task, "y_mean"):  # a regressor: its target units,
            task.y_mean.fill_(dm.target_stats[0])  # which fitting set from the training split, as here
            task.y_std.fill_(dm.target_stats[1])
    else:
        ckpt = checkpoint(info, run_dir, ckpt, fix="re-train with `dvc repro` or pass --ckpt")
        task.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"])
    task.eval()
    return info, cfg, dm, task


def log_confusion_matrix(cm, output_dir: Path, dataset: str) -> Path:
    import mlflow

    from dlzoo.report.plots import confusion_matrix

    path = confusion_matrix(cm, output_dir / "plots" / "confusion_matrix.png", title=f"{dataset}: test confusion matrix "
                            f"(acc {cm.trace() / max(cm.sum(), 1):.3f})")
    mlflow.log_artifact(str(path), "plots")
    return path


def split_loader(dm, split: str):
    import torch

    if split == "train":  # unshuffled
        return torch.utils.data.DataLoader(dm.datasets["train"], batch_size=dm.batch_size)
    return {"val": dm.val_dataloader, "test": dm.test_dataloader}[split]()


def test_split(task, dm, split: str, trainer_cfg) -> dict[str, float]:
    """The task's test metrics on one split, keyed ``<split>/<metric>``, on one device of the run's
    configured accelerator (``trainer_cfg``: its ``trainer`` config) at its precision."""
    from dlzoo.accelerators import single_device_trainer

    trainer = single_device_trainer(trainer_cfg)
    results = trainer.test(task, dataloaders=split_loader(dm, split), verbose=False)[0]
    return {k.replace("test/", f"{split}/"): float(v) for k, v in results.items()}


def evaluate(run_dir: Path | str, out_dir: Path, split: str = "test", ckpt: str | None = None,
             register: bool = True) -> dict:
    import mlflow
    import numpy as np
    import torch


    from dlzoo.accelerators import device

    info, cfg, dm, task = load_task(run_dir, ckpt)
    metrics = test_split(task, dm, split, cfg.trainer)
    loader = split_loader(dm, split)
    dev = device(cfg.trainer)
    task.to(dev)  # the Trainer hands the module back on the CPU; the outputs below are computed on the device
    extra: dict = {}
    figures: list[Path] = []
    if cfg.task == "seq2seq":
        labels, preds, extra = _seq2seq_outputs(task, dm, loader, dev)
    elif hasattr(task, "evaluation_outputs"):  # generative tasks: latent clusters / sample modes, figures
        labels, preds, more, figures = task.evaluation_outputs(dm, split, out_dir / "plots")
        metrics |= more
    elif cfg.task == "detect":
        labels, preds, extra = _detect_outputs(task, loader, out_dir, f"{cfg.get('name') or Path(str(run_dir)).name}: {split}")
    else:
        regress = cfg.task == "regress"
        with torch.no_grad():  # class labels, or real values for regression
            out = [task(x.to(dev)) for x, _ in loader]
            preds = torch.cat([o.squeeze(1) if regress else o.argmax(1) for o in out]).cpu().numpy()
        labels = np.concatenate([y.numpy() for _, y in loader])
        if regress and cfg.model.name == "logreg":  # linear regression: compare SGD with the closed form
            from dlzoo.tasks.regress import closed_form_comparison

            metrics |= closed_form_comparison(task, dm, split)
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "predictions.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["actual", "predicted"])
        w.writerows(zip(labels.tolist(), preds.tolist()))

    mlflow.set_tracking_uri(info["tracking_uri"])
    with mlflow.start_run(run_id=info["run_id"]):  # reopen the training run; ends as FINISHED
        mlflow.log_metrics(metrics)
        if split == "test" and getattr(task, "test_confusion", None) is not None:  # classification
            log_confusion_matrix(task.test_confusion, out_dir, cfg.data.name)
        mlflow.log_artifact(str(out_dir / "predictions.csv"))
        for path in figures:
            mlflow.log_artifact(str(path), "plots")
        if extra.get("detections_plot"):
            mlflow.log_artifact(extra["detections_plot"], "plots")
    registered = info.get("registered")
    score_key = next((k for k in ("test/acc", "test/r2") if k in metrics), None)
    if register and split == "test" and info.get("model_uri") and not registered and score_key:
        from dlzoo.tracking.registry import register as register_version, registered_name

        name = registered_name(cfg.data.name, cfg.model.name)
        version, best = register_version(mlflow.MlflowClient(info["tracking_uri"]), name, info["model_uri"],
                                         info["run_id"], score_key, metrics[score_key])
        registered = f"{name}/{version}" + (" @best" if best else "")
    return {"name": cfg.get("name") or Path(str(run_dir)).name, "run_id": info["run_id"], "experiment": info["experiment"],
            "task": cfg.task, "model": cfg.model.name, "dataset": cfg.data.name,
            "num_params": info.get("num_params"), "flops": info.get("flops"), "epoch_time_s": info.get("epoch_time_s"),
            "epochs": info.get("epochs"), "registered": registered, **metrics, **extra}


def _seq2seq_outputs(task, dm, loader, dev):
    """Seq2seq: token-level (actual, predicted) pairs of greedy decoding on ``loader`` (for the confusion
    plot), and greedy exact-sequence accuracy per source length on the ``long`` split (the length curve,
    ``long/acc_len_<n>``)."""
    import numpy as np
    import torch

    from dlzoo.data.synthetic import PAD
    from dlzoo.tasks.seq2seq import trim

    def greedy(src, tgt):  # -> (target without BOS, the model's own decoding: greedy or non-autoregressive), trimmed
        src, target = trim(src), trim(tgt)[:, 1:]
        return target, task.decode(src.to(dev), target.shape[1] + task.hparams.max_extra_len).cpu()

    actual, predicted = [], []
    for batch in loader:
        target, pred = greedy(*batch)
        pred = torch.nn.functional.pad(pred, (0, max(0, target.shape[1] - pred.shape[1])), value=PAD)
        real = target != PAD
        actual.append(target[real].numpy())
        predicted.append(pred[:, : target.shape[1]][real].numpy())
    # the same long/* figures as the task's own test run on a datamodule
    return np.concatenate(actual), np.concatenate(predicted), task.length_figures(dm) if "long" in dm.datasets else {}


def _detect_outputs(task, loader, out_dir: Path, title: str, min_score: float = 0.3, n_drawn: int = 16):
    """Detection, from the detections of the test pass just run: (true, predicted) class pairs for a
    confusion plot -- each detection scoring at least ``min_score``, best first, is matched to the unmatched
    true box it overlaps most (IoU >= 0.5, any class); unmatched detections count as (background, class),
    missed boxes as (class, background) -- and a plot of the first ``n_drawn`` images with their true and
    predicted boxes."""
    import numpy as np
    import torch

    from dlzoo.models.boxes import box_iou
    from dlzoo.report.detection import draw_detections

    detections, targets = task.test_outputs
    x = next(iter(loader))[0][:n_drawn]  # the first images of the split (one batch)
    drawn = draw_detections(x, torch.stack(targets[:len(x)]), detections[:len(x)], out_dir / "plots" / "detections.png",
                            min_score, title=f"{title} (green: true, red: detected)")
    actual, predicted = [], []
    for det, tgt in zip(detections, targets):
        tgt = tgt[tgt[:, 0] >= 0]
        sure = det["scores"] >= min_score
        boxes, labels = det["boxes"][sure], det["labels"][sure]  # already sorted by score
        free = torch.ones(len(tgt))  # 1 = true box not matched yet
        iou = box_iou(boxes[:, None], tgt[None, :, 1:]) if len(tgt) else None  # (detections, true boxes)
        for i, label in enumerate(labels.tolist()):
            j = int((iou[i] * free).argmax()) if iou is not None else -1
            if j >= 0 and iou[i, j] * free[j] >= 0.5:
                free[j] = 0.0
                actual.append(str(int(tgt[j, 0])))
            else:
                actual.append("background")
            predicted.append(str(label))
        for j in free.nonzero().squeeze(1).tolist():
            actual.append(str(int(tgt[j, 0])))
            predicted.append("background")
    return np.array(actual), np.array(predicted), {"detections_plot": str(drawn)}


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
