"""``python -m dlzoo.claims NAME`` (a file of conf/claims/) runs one claim and writes its verdict JSON;
``--list`` lists them. ``-o KEY=VALUE`` adds Hydra overrides to every run of the claim (e.g. fewer epochs for a
quick look); ``--seeds 0,1`` replaces the claim's seeds; ``--threads N`` trains with N torch threads (a stand-in for
another CPU); ``--combine DIR DIR`` merges the verdicts of two such runs (e.g. 1 and 2 threads): a verdict that
differs between them is inconclusive."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dlzoo.errors import ConfigError, DataError, DlzooError
from dlzoo.paths import project_root
from dlzoo.report.leaderboard import CLAIMS_DIR as METRICS_DIR  # next to metrics/; the report reads it



def main(argv: list[str] | None = None) -> None:
    from dlzoo.claims.spec import claim_names, load_claim

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", nargs="?", help="a claim of conf/claims/ (or a path to a claim YAML)")
    ap.add_argument("--list", action="store_true", help="list the claims and their statements")
    ap.add_argument("--summary", action="store_true", help=f"print the verdicts recorded in {METRICS_DIR}/")
    ap.add_argument("--out", type=Path, default=None, help=f"verdict JSON (default: {METRICS_DIR}/NAME.json)")
    ap.add_argument("--runs", type=Path, default=None, help="run folders (default: artifacts/claims/NAME)")
    ap.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                    help="a Hydra override added to every run of the claim (repeatable)")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds replacing the claim's own")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for training (torch.set_num_threads, and runtime.threads where the config has it)")
    ap.add_argument("--combine", nargs=2, type=Path, metavar="DIR",
                    help="merge the verdict JSONs of two results folders (e.g. 1 and 2 threads) into --out-dir")
    ap.add_argument("--out-dir", type=Path, default=None,
                    help=f"with --combine: where the merged verdict JSONs go (default: {METRICS_DIR}/)")
    ap.add_argument("--estimate", action="store_true",
                    help=f"estimate each claim's wall time at its current seeds from the run times in {METRICS_DIR}/")
    ap.add_argument("--recheck", action="store_true",
                    help="re-judge the runs recorded in the verdict JSON with the claim file's current checks (no training)")
    args = ap.parse_args(argv)
    root = project_root()
    try:
        if args.summary:
            return print_summary(root / METRICS_DIR)
        if args.estimate:
            return print_estimate(root / METRICS_DIR)
        if args.combine:
            from dlzoo.claims.combine import combine_dirs

            return print_combined(combine_dirs(*args.combine, args.out_dir or root / METRICS_DIR))
        if args.threads is not None and args.threads < 1:
            raise ConfigError(f"--threads {args.threads}: give an integer >= 1")
        if args.list or not args.name:
            for n in claim_names():
                print(f"{n:24s} {load_claim(n)['claim']}")
            return
        spec = load_claim(args.name)
        out = args.out or root / METRICS_DIR / f"{spec['name']}.json"
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
        from dlzoo.claims.runner import recheck, run_claim

        if args.recheck:
            if not out.exists():
                raise DataError(f"{out} does not exist: run `python -m dlzoo.claims {spec['name']}` first")
            result = recheck(spec, json.loads(out.read_text()), root)
        else:
            from dlzoo.console import quiet

            quiet()
            result = run_claim(spec, args.runs or root / "artifacts" / "claims" / spec["name"], root, args.override,
                               seeds, args.threads)
    except DlzooError as exc:
        sys.exit(f"error: {exc}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_result(result)
    print(f"MLflow parent run {result['parent_run_id']}; figures in {out}")


def describe_check(c: dict) -> str:
    """One check's figures: mean with its interval and n, and the n a decisive answer would need."""
    if c.get("method") is None:  # a result file written before intervals were recorded
        s = c.get("summary")
        return f"{s['mean']:.4g} ± {s['std']:.3g} (n={s['n']})" if s else "n/a"
    if not c.get("n"):
        return "n/a (every seed diverged)"
    if c["method"] == "exact":
        return f"{c['mean']:.4g} (exact: a deterministic pipeline result)"
    if c["ci_low"] is None:
        return f"{c['mean']:.4g} (n=1: one seed gives no interval)"
    text = f"{c['mean']:.4g} [{c['ci_low']:.4g}, {c['ci_high']:.4g}] ({c['method']}, n={c['n']})"
    if c.get("nan"):
        text += f"; {c['nan']} seed(s) diverged"
    elif c["verdict"] == "inconclusive":
        need = c.get("n_needed")
        text += f"; n≈{need} seeds would decide" if need else "; the mean sits on the threshold"
    return text


def print_result(result: dict) -> None:
    took = f" ({result['wall_s'] / 60:.1f} min)" if result.get("wall_s") is not None else ""
    print(f"claim {result['claim']}: {result['verdict'].upper()}{took}")
    for c in result["checks"]:
        print(f"  {c['verdict']:13s} {c['label']}: {describe_check(c)}, expected {c['expect']}")


def print_combined(results: list[dict]) -> None:
    for r in results:
        runs = ", ".join(f"{k}: {v}" for k, v in r["verdicts_by_run"].items())
        print(f"{r['claim']:24s} {r['verdict']:14s} ({runs})")


def print_summary(folder: Path) -> None:
    results = sorted((json.loads(f.read_text()) for f in folder.glob("*.json")), key=lambda r: r.get("number") or 99)
    if not results:
        raise DataError(f"no verdicts in {folder}: run `make claims` (or `python -m dlzoo.claims NAME`)")
    for r in results:
        print_result(r)
    timed = [r["wall_s"] for r in results if r.get("wall_s") is not None]
    took = f"; {sum(timed) / 60:.1f} min of runs for the {len(timed)} timed" if timed else ""
    print(f"\n{len(results)} claims{took}; details and plots: reports/claims.md (after the report stage)")


def estimate_minutes(spec: dict, recorded: dict | None) -> float | None:
    """Minutes the claim's runs would take at its current seeds: each variant's mean recorded run time (the
    ``seconds`` of each run in its verdict JSON) times the seeds; None when a variant has no recorded run (the
    settings of a recorded variant may have changed since: the estimate does not know)."""
    if not spec["variants"]:
        return 0.0
    if not recorded:
        return None
    total = 0.0
    for vname in spec["variants"]:
        times = [r["seconds"] for r in recorded.get("variants", {}).get(vname, {}).values() if r.get("seconds")]
        if not times:
            return None
        total += sum(times) / len(times) * len(spec["seeds"])
    return total / 60


def print_estimate(folder: Path) -> None:
    from omegaconf import OmegaConf

    from dlzoo.claims.spec import load_claim

    pipeline = OmegaConf.load(project_root() / "params.yaml").pipeline
    for group in ("claims", "claims_slow", "claims_on_results"):
        known, unknown = 0.0, []
        for name in pipeline.get(group) or []:
            path = folder / f"{name}.json"
            minutes = estimate_minutes(load_claim(name), json.loads(path.read_text()) if path.exists() else None)
            print(f"{group:18s} {name:24s} " + (f"{minutes:6.1f} min" if minutes is not None else "   n/a (no runs recorded)"))
            known += minutes or 0.0
            unknown += [name] if minutes is None else []
        print(f"{group}: {known:.1f} min of runs" + (f", plus {', '.join(unknown)} (not recorded)" if unknown else "") + "\n")
