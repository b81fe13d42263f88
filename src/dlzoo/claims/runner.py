"""Running one claim: its variants over its seeds as child MLflow runs of ``claim-<name>``, then the checks."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from dlzoo.claims import expr
from dlzoo.claims.measures import MEASURES
from dlzoo.claims.verdict import claim_verdict, judge_values, parse_expectation, summarize
from dlzoo.errors import DataError


EXPERIMENT = "claims"


class DivergedFigures(expr.Figures):
    """A variant whose loss went NaN/Inf (the run is FAILED in MLflow): figures it never reached read as NaN, so
    a check on them is not met, instead of the claim failing to evaluate."""

    def __missing__(self, key: str) -> float:
        return math.nan


def load_inputs(spec: dict, root: Path) -> dict[str, dict]:
    inputs = {}
    for key, rel in (spec.get("inputs") or {}).items():
        path = root / rel
        if not path.exists():
            stage = f"compress@{path.stem}" if path.parent.name == "compress" else "<the stage that writes it>"
            raise DataError(f"claim {spec['name']}: input {path} is missing; the default pipeline makes it: "
                            f"`make run` (or `dvc repro {stage}`)")
        inputs[key] = json.loads(path.read_text())
    return inputs


def _run_ids(obj, found: set[str] | None = None) -> set[str]:
    """Every MLflow run id in an input's JSON (the source runs a claim on pipeline results points at)."""
    found = set() if found is None else found
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        if isinstance(k, str) and k.endswith("run_id") and isinstance(v, str):
            found.add(v)
        else:
            _run_ids(v, found)
    return found


def evaluate_checks(spec: dict, per_seed: dict[int | None, dict[str, dict]], inputs: dict[str, dict]) -> list[dict]:
    """Each check's statistic for every seed, its interval over seeds (dlzoo.claims.verdict) and its verdict."""
    seeded = any(seed is not None for seed in per_seed)  # no seeds: a claim on deterministic pipeline results
    results = []
    for check in spec["checks"]:
        values = {seed: expr.evaluate(check["statistic"], {**inputs, **figures}) for seed, figures in per_seed.items()}
        finite = [v for v in values.values() if not math.isnan(v)]
        judged = judge_values(list(values.values()), check["expect"], seeded)  # NaN: a diverged seed
        results.append({
            "label": check.get("label", check["statistic"]), "statistic": check["statistic"], "expect": check["expect"],
            "threshold": parse_expectation(check["expect"])[1],
            "values": {str(s): (None if math.isnan(v) else v) for s, v in values.items()},
            "summary": summarize(finite) if finite else None,
            **{k: judged.get(k) for k in ("mean", "std", "ci_low", "ci_high", "n", "method", "n_needed", "nan")},
            "verdict": judged["verdict"],
        })
    return results


def judge(spec: dict, result: dict, per_seed: dict, inputs: dict[str, dict]) -> None:
    result["checks"] = evaluate_checks(spec, per_seed, inputs)
    result["verdict"] = claim_verdict([c["verdict"] for c in result["checks"]])


INTERVAL_METRICS = ("mean", "std", "ci_low", "ci_high", "n", "n_needed")


def record_verdict(client, pid: str, result: dict) -> None:
    """The checks' means, spreads, intervals, n and n_needed as metrics and the verdicts as tags of the claim's
    parent run."""
    for i, c in enumerate(result["checks"]):
        for key in INTERVAL_METRICS:
            if isinstance(c.get(key), (int, float)):
                client.log_metric(pid, f"check{i}/{key}", float(c[key]))
        client.set_tag(pid, f"dlzoo.check{i}", f"{c['label']}: {c['verdict']}"[:5000])
    client.set_tag(pid, "dlzoo.verdict", result["verdict"])


def recheck(spec: dict, result: dict, root: Path) -> dict:
    """Re-judge a claim's recorded runs (its JSON) with the claim file's current checks: no training. The
    verdict tags of its MLflow parent run are updated too."""
    import mlflow

    from dlzoo.tracking import mlflow_utils as mu

    per_seed: dict = {}
    for vname, by_seed in result["variants"].items():
        for seed, row in by_seed.items():
            cls = DivergedFigures if row.get("diverged") else expr.Figures
            per_seed.setdefault(None if seed == "None" else int(seed), {})[vname] = cls(row)
    result |= {"number": spec.get("number"), "title": spec.get("title", spec["name"]), "statement": spec["claim"],
               "plot": spec.get("plot"), "notes": spec.get("notes", "")}
    judge(spec, result, per_seed or {None: {}}, load_inputs(spec, root))
    record_verdict(mlflow.MlflowClient(mu.tracking_uri(None, root)), result["parent_run_id"], result)
    return result


def thread_overrides(cfg0, threads: int | None) -> list[str]:
    """``--threads N``: torch.set_num_threads(N) in this process, which trains every run; where the config has a
    ``runtime.threads`` key (the runs' own thread setting), it is overridden to N too so that no run resets it."""
    import torch
    from omegaconf import OmegaConf

    if threads is None:
        return []
    torch.set_num_threads(threads)
    return [f"runtime.threads={threads}"] if OmegaConf.select(cfg0, "runtime.threads", default="absent") != "absent" else []


def run_claim(spec: dict, out_root: Path, root: Path, extra: list[str] | None = None, seeds: list[int] | None = None,
              threads: int | None = None) -> dict:
    """Train every variant of a claim at every seed under one MLflow parent run of the project at ``root``, and
    judge the claim on the figures (and on the pipeline results it names, read from ``root``)."""
    import torch

    from dlzoo.compare import CURVE_KEYS, base_overrides, log_row, run_variant
    from dlzoo.configure import compose
    from dlzoo.tracking import mlflow_utils as mu

    started = time.perf_counter()
    inputs = load_inputs(spec, root)  # before training: a missing input is known at once
    seeds = list(seeds if seeds is not None else spec.get("seeds") or [])
    # every claim's runs in one MLflow experiment, "claims" (a claim may mix datasets); -o overrides it
    base = [*base_overrides(spec), f"logger.experiment_name={EXPERIMENT}", *(extra or [])]
    first = next(iter(spec["variants"].values()), {"overrides": []})
    cfg0 = compose([*base, *first["overrides"]])
    base += thread_overrides(cfg0, threads)
    client = mu.store_client(mu.tracking_uri(cfg0.logger.get("tracking_uri"), root))
    pid = mu.start_parent(client, cfg0.logger.experiment_name, f"claim-{spec['name']}", base, {"dlzoo.claim": spec["name"]},
                          root)
    client.log_param(pid, "claim", spec["claim"][:6000])
    client.set_tag(pid, "dlzoo.threads", str(torch.get_num_threads()))
    sources = sorted(_run_ids(inputs))
    if sources:  # a claim on pipeline results points at their runs
        client.set_tag(pid, "dlzoo.source_runs", ",".join(sources)[:5000])
    result = {"claim": spec["name"], "number": spec.get("number"), "title": spec.get("title", spec["name"]),
              "statement": spec["claim"], "plot": spec.get("plot"),
              "lecture": spec.get("lecture", ""), "notes": spec.get("notes", ""), "parent_run_id": pid,
              "seeds": seeds, "threads": torch.get_num_threads(), "base": spec.get("base", []), "inputs": spec.get("inputs") or {}, "variants": {}}
    with mu.ending(lambda status, _: client.set_terminated(pid, status)):
        per_seed: dict[int | None, dict[str, dict]] = {}
        for seed in seeds if spec["variants"] else [None]:
            per_seed[seed] = {}
            for vname, v in spec["variants"].items():
                label = f"{vname}_s{seed}"
                overrides = [*base, *v["overrides"], f"seed={seed}"]
                try:
                    row, task, dm = run_variant(label, overrides, out_root / label, pid, tuple(spec.get("metrics", [])),
                                                v["checkpoint"], (*CURVE_KEYS, *spec.get("curves", [])))
                except FloatingPointError as exc:  # diverged: the evidence some claims look for
                    row, task = {"diverged": 1.0, "error": str(exc)}, None
                    print(f"{label}: diverged ({exc})", flush=True)
                else:
                    row["diverged"] = 0.0
                    for m in spec.get("measure", []):
                        row[m] = MEASURES[m](task, dm, seed=seed)
                    log_row(client, pid, label, row)
                result["variants"].setdefault(vname, {})[str(seed)] = row
                per_seed[seed][vname] = (DivergedFigures if task is None else expr.Figures)(row)
        judge(spec, result, per_seed, inputs)
        result["wall_s"] = round(time.perf_counter() - started, 1)  # training, measures and checks, this process
        client.log_metric(pid, "claim/wall_s", result["wall_s"])
        record_verdict(client, pid, result)
    return result
