"""Controlled comparisons for the report: ``python -m dlzoo.compare NAME --out metrics/compare_NAME.json``.

``conf/comparison/NAME.yaml`` gives ``base`` overrides (same model, data, seed and epochs for all) and
``variants`` (name -> the overrides that differ, e.g. ``optimizer=sgd``), and optionally ``metrics``: more keys
of the variants' train/val measurements to keep (e.g. ``val/kl`` for the β sweep). Every variant is trained in this
one process (one Lightning import instead of one per run) as a child MLflow run of a parent run named
after the comparison; its final weights (``last.ckpt``: the same number of epochs for all) are measured on
the train and val splits without dropout, which gives the train-val gap. The JSON holds the figures and the
per-epoch curves; the report draws them (dlzoo.report.sections.comparisons).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from dlzoo.errors import ConfigError, DlzooError
from dlzoo.paths import conf_dir, paths_of, project_root


def load_comparison(name: str) -> dict:
    path = conf_dir() / "comparison" / f"{name}.yaml"
    if not path.exists():
        choices = sorted(p.stem for p in (conf_dir() / "comparison").glob("*.yaml"))
        raise ConfigError(f"comparison {name!r} is unknown; choose one of: {', '.join(choices)}")
    spec = OmegaConf.to_container(OmegaConf.load(path))
    if not spec.get("variants"):
        raise ConfigError(f"{path}: `variants` is empty")
    bad = [v for v in spec["variants"] if not re.fullmatch(r"[\w.-]+", v)]
    if bad:  # they become MLflow metric names and folder names
        raise ConfigError(f"{path}: variant names {bad} may hold only letters, digits, _ . -")
    return spec


CURVE_KEYS = ("train/loss", "val/loss", "val/acc")


def _curves(history_csv: Path, keys: tuple[str, ...] = CURVE_KEYS) -> dict[str, list[float]]:
    with history_csv.open() as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows if r.get(k)] for k in keys}


def base_overrides(spec: dict) -> list[str]:
    """The spec's shared overrides plus what every variant of a comparison (or claim) sets: no test split, no model
    logged; and the trainer preset of ``make ... TRAINER=`` (``DLZOO_TRAINER``) where the spec names none."""
    from dlzoo.configure import with_trainer

    return with_trainer([*spec.get("base", []), "train.test=false", "train.log_model=false",
                         "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"])


def run_variant(variant: str, overrides: list[str], out: Path, parent_id: str, keep: tuple[str, ...] = (),
                checkpoint: str = "last", curve_keys: tuple[str, ...] = CURVE_KEYS) -> tuple[dict, object, object]:
    """Train one variant as a child run of ``parent_id`` and measure its ``checkpoint`` ("last": the final weights,
    the same epochs for all; "best": what the checkpoint callback kept) on the train and val splits without
    dropout. Returns (figures row, task with those weights, datamodule)."""
    from dlzoo.configure import compose
    from dlzoo.evaluate import load_task, test_split
    from dlzoo.train import run

    t0 = time.perf_counter()
    info = run(compose(overrides), out, overrides, extra_tags={"mlflow.parentRunId": parent_id, "dlzoo.variant": variant})
    seconds = time.perf_counter() - t0
    _, cfg, dm, task = load_task(out, info[f"{checkpoint}_ckpt"])
    metrics = {**test_split(task, dm, "train", cfg.trainer), **test_split(task, dm, "val", cfg.trainer)}
    row = {k: metrics[k] for k in ("train/acc", "val/acc", "train/loss", "val/loss", *keep) if k in metrics}
    if "train/acc" in row:
        row["gap/acc"] = row["train/acc"] - row["val/acc"]
    if "val/loss" in row:  # a GAN logs no loss on held-out data
        row["gap/loss"] = row["val/loss"] - row["train/loss"]
    row |= {"epochs": info["epochs"], "seconds": round(seconds, 2), "run_id": info["run_id"],
            "curves": _curves(out / "history.csv", curve_keys)}
    return row, task, dm


def log_row(client, parent_id: str, prefix: str, row: dict) -> None:
    for k, v in row.items():
        if isinstance(v, float):
            client.log_metric(parent_id, f"{prefix}/{k}", v)
    print(f"{prefix}: " + " ".join(f"{k}={v:.4f}" for k, v in row.items() if isinstance(v, float)), flush=True)


def compare(name: str, out_root: Path) -> dict:
    from dlzoo.configure import compose
    from dlzoo.tracking import mlflow_utils as mu

    spec = load_comparison(name)
    base = base_overrides(spec)
    cfg0 = compose(base)
    root = paths_of(cfg0)[0]
    client = mu.store_client(mu.tracking_uri(cfg0.logger.get("tracking_uri"), root))
    pid = mu.start_parent(client, cfg0.logger.experiment_name, f"compare-{name}", base, {"dlzoo.compare": name}, root)
    client.log_param(pid, "compare.base", " ".join(spec.get("base", [])))
    result = {"comparison": name, "title": spec.get("title", name), "dataset": cfg0.data.name, "model": cfg0.model.name,
              "parent_run_id": pid, "variants": {}}
    with mu.ending(lambda status, _: client.set_terminated(pid, status)):
        for variant, overrides in spec["variants"].items():
            row, _, _ = run_variant(variant, [*base, *overrides], out_root / variant, pid, tuple(spec.get("metrics", [])))
            result["variants"][variant] = row
            log_row(client, pid, variant, row)
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help="a file of conf/comparison/ (e.g. optimizers, regularization)")
    ap.add_argument("--out", type=Path, default=None, help="metrics JSON (default: metrics/compare_NAME.json)")
    ap.add_argument("--runs", type=Path, default=None, help="run folders (default: artifacts/compare/NAME)")
    args = ap.parse_args(argv)
    from dlzoo.console import quiet

    quiet()
    root = project_root()
    try:
        result = compare(args.name, args.runs or root / "artifacts" / "compare" / args.name)
    except DlzooError as exc:
        sys.exit(f"error: {exc}")
    out = args.out or root / "metrics" / f"compare_{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
