"""Run compression recipes on a trained run and record each result as an MLflow run nested under it.

Linking convention (one, used everywhere): a compression result is its own MLflow run in the source run's
experiment, tagged ``mlflow.parentRunId=<source run id>`` (the UI nests it under the source run) and
``dlzoo.source_run_id`` (for searches); ``dlzoo.compress.recipe`` / ``dlzoo.compress.method`` say what was
done. Distillation's two students (distilled and from-scratch) are nested under the teacher the same way.
The source run itself gets its own size / latency / parameter figures, so "Compare" shows both sides.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from dlzoo.compress import measure as M
from dlzoo.compress.source import Source, finetune, load_compression_source
from dlzoo.tracking.runs import checkpoint, net_state
from dlzoo.errors import ConfigError
from dlzoo.paths import conf_dir, paths_of


@dataclass
class Result:
    """One compressed model. ``run_id`` is set when the model was trained in its own MLflow run already."""

    model: nn.Module
    history: list[dict] = field(default_factory=list)  # per-step figures (iterative pruning)
    run_id: str | None = None
    role: str | None = None  # distillation: "distilled" or "scratch"
    metrics: dict = field(default_factory=dict)  # method-specific figures (channel gating: gate/*)


def recipe_names() -> list[str]:
    return sorted(p.stem for p in (conf_dir() / "compress").glob("*.yaml") if not p.stem.startswith("_"))


def load_recipe(name: str, overrides: list[str] | None = None) -> DictConfig:
    """``conf/compress/<name>.yaml`` composed by Hydra (with its ``_defaults``) plus overrides."""
    from hydra import compose, initialize_config_dir

    if name not in recipe_names():
        raise ConfigError(f"compress recipe {name!r} is unknown; choose one of: {', '.join(recipe_names())}")
    with initialize_config_dir(str(conf_dir() / "compress"), version_base="1.3"):
        cfg = compose(config_name=name, overrides=list(overrides or []))
    OmegaConf.resolve(cfg)
    OmegaConf.set_struct(cfg, False)
    cfg.name = name
    return cfg


def _example(src: Source, n: int = 2) -> torch.Tensor:
    return src.dm.datasets["train"].tensors[0][:n]  # (n, *input_shape)


def _finetuner(src: Source, recipe: DictConfig):
    return lambda net: finetune(src, net, int(recipe.finetune.epochs), float(recipe.finetune.lr))


def _prune(src: Source, recipe: DictConfig, out_dir: Path) -> list[Result]:
    from dlzoo.compress import prune

    if recipe.kind == "structured":
        net = prune.shrink(src.net, _example(src), src.dm.num_classes, float(recipe.target_params),
                           int(recipe.steps), float(recipe.max_ratio), bool(recipe.global_pruning))
        return [Result(_finetuner(src, recipe)(net))]
    if recipe.kind != "unstructured":
        raise ConfigError(f"compress.kind={recipe.kind!r}: choose one of ['structured', 'unstructured']")
    init_state = None
    if recipe.rewind:  # the network at initialisation: same seed and builder as the source's training
        import lightning.pytorch as pl

        from dlzoo import builders

        pl.seed_everything(src.cfg.seed, verbose=False)
        init_state = builders.build_network(src.cfg, src.dm.input_shape, src.dm.num_classes).state_dict()
    history: list[dict] = []
    test = src.dm.test_dataloader()

    def on_step(step: int, target: float, net: nn.Module) -> None:
        total, nonzero = M.param_counts(net)
        history.append({"step": step, "target": target, "sparsity": 1 - nonzero / total,
                        "acc": M.accuracy(net, test, src.dm.num_classes)})

    net = prune.iterative_prune(src.net, list(recipe.schedule), recipe.scope, _finetuner(src, recipe),
                                init_state, on_step)
    return [Result(net, history)]


def _quantize(src: Source, recipe: DictConfig, out_dir: Path) -> list[Result]:
    from dlzoo.compress import quantize as Q

    if recipe.mode == "dynamic":
        return [Result(Q.quantize_dynamic(src.net, list(recipe.layers), recipe.backend))]
    if recipe.mode == "static":
        loader = src.dm.train_dataloader()
        batches = [x for _, (x, _) in zip(range(int(recipe.calibration_batches)), loader)]
        return [Result(Q.quantize_static(src.net, batches, _example(src), recipe.backend))]
    if recipe.mode == "qat":
        return [Result(Q.quantize_qat(src.net, _example(src), _finetuner(src, recipe), recipe.backend))]
    raise ConfigError(f"compress.mode={recipe.mode!r}: choose one of {list(Q.MODES)}")


def _distill(src: Source, recipe: DictConfig, out_dir: Path) -> list[Result]:
    from dlzoo import builders
    from dlzoo.compress.distill import student_configs
    from dlzoo.train import run

    cfgs = student_configs(src.cfg, src.run_dir, recipe, src.info["experiment"], f"{src.name}-{recipe.name}")
    results = []
    for role, cfg in cfgs.items():
        info = run(cfg, out_dir / role, [f"compress={recipe.name}", f"role={role}"])
        net = builders.build_network(cfg, src.dm.input_shape, src.dm.num_classes)
        net.load_state_dict(net_state(checkpoint(info, out_dir / role)))
        results.append(Result(net.eval(), run_id=info["run_id"], role=role))
    return results


def _gate(src: Source, recipe: DictConfig, out_dir: Path) -> list[Result]:
    import copy

    from dlzoo.compress import gate as G

    keep, weight = float(recipe.keep), float(recipe.weight)
    if not 0 < keep <= 1 or weight < 0:
        raise ConfigError(f"compress keep={keep} must be in (0, 1] and weight={weight} >= 0")
    net = G.gate_network(copy.deepcopy(src.net))
    label_smoothing = float((src.cfg.get("regularizer") or {}).get("label_smoothing") or 0.0)
    net = finetune(src, net, int(recipe.finetune.epochs), float(recipe.finetune.lr),
                   G.BudgetLoss(net, keep, weight, label_smoothing))
    figures = G.gating_figures(net, src.net, src.dm.datasets["test"].tensors[0], int(recipe.flops_inputs))
    return [Result(net, metrics=figures)]


METHODS = {"prune": _prune, "quantize": _quantize, "distill": _distill, "gate": _gate}


def _log_table(rows: list[dict], path: Path) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _record(src: Source, recipe: DictConfig, res: Result, figures: dict, base: dict, out_dir: Path) -> dict:
    """Log one result to MLflow (nested under the source run) and return its metrics row."""
    import mlflow
    import mlflow.pytorch

    from dlzoo.config import flatten
    from dlzoo.tracking import mlflow_utils as mu

    label = recipe.name if res.role is None else f"{recipe.name}-{res.role}"
    metrics = {
        "test/acc": figures["acc"], "test/acc_delta": figures["acc"] - base["acc"],
        "params/total": figures["params/total"], "params/nonzero": figures["params/nonzero"],
        "sparsity": figures["sparsity"], "size/bytes": figures["size/bytes"],
        "compression_ratio": base["size/bytes"] / figures["size/bytes"],
        **{k: v for k, v in figures.items() if k.startswith("latency/")},
        **{f"speedup/{k.split('/')[1].removesuffix('_us')}": base[k] / v
           for k, v in figures.items() if k.startswith("latency/")},
        **res.metrics,
    }
    tags = {"mlflow.parentRunId": src.run_id, "dlzoo.source_run_id": src.run_id, "dlzoo.source": src.name,
            "dlzoo.compress.recipe": recipe.name, "dlzoo.compress.method": recipe.method}
    if res.role:
        tags["dlzoo.compress.role"] = res.role
    mlflow.set_tracking_uri(src.info["tracking_uri"])
    if res.run_id:
        active = mlflow.start_run(run_id=res.run_id)
        mlflow.set_tags(tags)
    else:
        client = mlflow.MlflowClient()
        exp_id = mu.get_or_create_experiment(client, src.info["experiment"])
        active = mlflow.start_run(experiment_id=exp_id, run_name=f"{src.info['run_name']}-{label}",
                                  tags=mu.provenance_tags([f"compress={recipe.name}"], paths_of(src.cfg)[0]) | tags)
    folder = out_dir / label
    folder.mkdir(parents=True, exist_ok=True)
    with active:
        mlflow.log_params({f"compress.{k}": str(v)[:6000]
                           for k, v in flatten(OmegaConf.to_container(recipe, resolve=True)).items()})
        mlflow.log_metrics(metrics)
        for h in res.history:
            mlflow.log_metrics({"prune/acc": h["acc"], "prune/sparsity": h["sparsity"]}, step=h["step"])
        table = M.sparsity_table(res.model)
        mlflow.log_artifact(str(_log_table(table, folder / "sparsity.csv")))
        mlflow.log_table({k: [r[k] for r in table] for k in table[0]}, artifact_file="sparsity.json")
        (folder / "weights.pt").write_bytes(M.serialize(res.model))  # the file whose size is size/bytes
        mlflow.log_artifact(str(folder / "weights.pt"))
        if not res.run_id:  # a trained student already holds its MLflow model
            mlflow.pytorch.log_model(res.model, name="model", serialization_format="pickle",
                                     pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
    return {"name": f"{src.name}/{label}", "source": src.name, "recipe": recipe.name, "method": recipe.method,
            "role": res.role, "model": src.cfg.model.name, "dataset": src.cfg.data.name,
            "cpu": torch.backends.cpu.get_cpu_capability(), "run_id": active.info.run_id,
            "source_run_id": src.run_id, "source/test/acc": base["acc"], **metrics}


def compress(run_dir: Path, recipes: list[str], out_dir: Path, overrides: list[str] | None = None,
             root: Path | None = None) -> list[dict]:
    """Apply each recipe to the trained run in ``run_dir`` (of the project at ``root``, default: the one the
    command runs in); returns one metrics row for the source and one per compressed model. Overrides
    (``key=value``) apply to every recipe that has the key."""
    loaded = {name: load_recipe(name, _applicable(name, overrides or [])) for name in recipes}
    unused = [o for o in overrides or [] if not any(o in _applicable(n, [o]) for n in recipes)]
    if unused:
        raise ConfigError(f"override(s) {unused} match no key of the recipes {recipes}")
    src = load_compression_source(run_dir, root)
    meas = loaded[recipes[0]].measure if recipes else OmegaConf.create({"threads": 1, "repeats": 30, "warmup": 5,
                                                                          "batches": [1, 256]})
    kw = {"batches": list(meas.batches), "repeats": int(meas.repeats), "warmup": int(meas.warmup),
          "threads": int(meas.threads)}
    test = src.dm.test_dataloader()
    base = M.measure(src.net, src.dm.input_shape, test, src.dm.num_classes, **kw)
    _log_source_figures(src, base)
    rows = [{"name": src.name, "source": src.name, "recipe": "source", "method": "none", "role": None,
             "model": src.cfg.model.name, "dataset": src.cfg.data.name, "run_id": src.run_id,
             "source_run_id": src.run_id, "source/test/acc": base["acc"], "test/acc": base["acc"],
             "test/acc_delta": 0.0, "params/total": base["params/total"], "params/nonzero": base["params/nonzero"],
             "sparsity": base["sparsity"], "size/bytes": base["size/bytes"], "compression_ratio": 1.0,
             **{k: v for k, v in base.items() if k.startswith("latency/")}}]
    for name, recipe in loaded.items():
        if recipe.method not in METHODS:
            raise ConfigError(f"compress.method={recipe.method!r}: choose one of {sorted(METHODS)}")
        for res in METHODS[recipe.method](src, recipe, out_dir):
            figures = M.measure(res.model, src.dm.input_shape, test, src.dm.num_classes, **kw)
            rows.append(_record(src, recipe, res, figures, base, out_dir))
            print(_summary(rows[-1]))
    return rows


def _applicable(recipe: str, overrides: list[str]) -> list[str]:
    """The overrides whose key the recipe has (or that add a key with ``+``)."""
    plain = load_recipe(recipe)
    missing = object()
    return [o for o in overrides
            if o.startswith("+") or OmegaConf.select(plain, o.split("=", 1)[0].lstrip("~"), default=missing) is not missing]


def _log_source_figures(src: Source, base: dict[str, Any]) -> None:
    import mlflow

    client = mlflow.MlflowClient(src.info["tracking_uri"])
    for k, v in base.items():
        if k != "acc":
            client.log_metric(src.run_id, k, v)


def _summary(r: dict) -> str:
    return (f"{r['name']}: acc {r['test/acc']:.4f} ({r['test/acc_delta']:+.4f}), params {r['params/nonzero']:,}/"
            f"{r['params/total']:,} nonzero, size {r['size/bytes']:,} B ({r['compression_ratio']:.2f}x smaller), "
            f"b256 {r.get('latency/b256_us', float('nan')):.0f} us ({r.get('speedup/b256', float('nan')):.2f}x)")


def write_metrics(rows: list[dict], path: Path) -> None:
    """One JSON object keyed by result label (``source``, ``<recipe>``, ``distill-scratch`` ...), so that
    ``dvc metrics show`` lists e.g. ``prune_global.test/acc``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keyed = {r["name"].split("/", 1)[1] if "/" in r["name"] else "source": r for r in rows}
    path.write_text(json.dumps(keyed, indent=2) + "\n")
