"""What the report reads from the MLflow store: for every evaluated experiment (a ``metrics/*.json`` row,
which names its MLflow run), the run's key config, FLOPs, training time, status and learning curve. The
report's tables are the store's figures, so they match what the MLflow UI shows for the same run."""

from __future__ import annotations

CURVE_METRICS = ("val/acc", "val/r2", "val/loss")  # the first one a run has is its learning curve


def key_config(params: dict[str, str]) -> str:
    """The few settings that tell runs of one dataset apart, e.g. ``Adam lr=0.002 bs=64 cosine 40ep``."""
    opt = params.get("optimizer._target_", "").rsplit(".", 1)[-1]
    parts = [opt, f"lr={params['optimizer.lr']}" if "optimizer.lr" in params else "",
             f"bs={params['data.batch_size']}" if "data.batch_size" in params else ""]
    sched = params.get("scheduler._target_", "").rsplit(".", 1)[-1].replace("LR", "").replace("Annealing", "")
    if sched:
        parts.append(sched.lower())
    wd = params.get("optimizer.weight_decay", "0")
    if wd not in ("0", "0.0"):
        parts.append(f"wd={wd}")
    if "trainer.max_epochs" in params:
        parts.append(f"≤{params['trainer.max_epochs']}ep")
    return " ".join(p for p in parts if p)


def machine(tags: dict[str, str]) -> str | None:
    """Where a run was trained, from its ``env.*`` tags (dlzoo.tracking.environment), e.g.
    ``AMD EPYC (AVX2,AVX-512), 2 threads, torch 2.13.0+cpu``; None for a run without them."""
    if "env.cpu" not in tags:
        return None
    gpu = tags.get("env.gpu", "none")
    return (f"{tags['env.cpu']} ({tags.get('env.cpu_isa', '?')}), {tags.get('env.torch_threads', '?')} threads, "
            f"torch {tags.get('env.torch', '?')}" + ("" if gpu == "none" else f", {gpu}"))


def enrich(rows: list[dict], uri: str | None = None) -> list[str]:
    """Add ``config``, ``flops``, ``train_time_s``, ``status``, ``curve`` (``[(epoch, value)]`` of
    ``curve_metric``) and, for runs with the Hessian probe, ``hessian`` (its ``*_final`` figures, and under
    ``path`` the ``[(step, value)]`` of each figure measured during training) to each row from its MLflow run.
    Returns warnings for rows whose run is not there."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from dlzoo.tracking.mlflow_utils import tracking_uri

    client = mlflow.MlflowClient(tracking_uri(uri))
    warnings = []
    for row in rows:
        if not row.get("run_id"):
            continue
        try:
            run = client.get_run(row["run_id"])
        except MlflowException:
            warnings.append(f"{row.get('name')}: MLflow run {row['run_id']} is not in {client.tracking_uri}")
            continue
        params, metrics = run.data.params, run.data.metrics
        row["config"] = key_config(params)
        row["status"] = run.info.status
        if where := machine(run.data.tags):
            row["machine"] = where
        if "model/flops" in metrics:
            row["flops"] = int(metrics["model/flops"])
        if "time/epoch_s" in metrics and row.get("epochs"):
            row["train_time_s"] = round(metrics["time/epoch_s"] * row["epochs"], 1)
        if hessian := {k[len("hessian/"):-len("_final")]: v for k, v in metrics.items()
                       if k.startswith("hessian/") and k.endswith("_final")}:  # the probe's end-of-training figures
            row["hessian"] = hessian | {"path": {k: [(m.step, m.value) for m in sorted(
                client.get_metric_history(row["run_id"], f"hessian/{k}"), key=lambda m: m.step)]
                for k in ("max", "min", "neg_fraction") if f"hessian/{k}" in metrics}}
        # the run's latest metrics name the curve it has: one history request per run
        key = next((k for k in CURVE_METRICS if k in metrics), None)
        history = client.get_metric_history(row["run_id"], key) if key else []
        if history:
            # training logs one value per validation epoch at its global step (> 0); `evaluate --split val`
            # logs a final one at step 0, which is not part of the curve
            points = sorted((m for m in history if m.step > 0), key=lambda m: (m.step, m.timestamp)) or history
            row["curve_metric"], row["curve"] = key, list(enumerate((m.value for m in points), 1))
    return warnings
