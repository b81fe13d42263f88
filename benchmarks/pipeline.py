"""Wall time of the pipeline from the shell: a fresh `make run` (clone of this repo's HEAD: venv, install,
data, the whole `dvc repro`, leaderboard), then in that clone a no-op `dvc repro` (``--noop-repeats`` times;
bar: <= 10 s) and, with ``--full``, a forced full `dvc repro -f` (no install).

    python benchmarks/pipeline.py                 # fresh make run + no-op repro
    python benchmarks/pipeline.py --full          # + dvc repro -f
    python benchmarks/pipeline.py --clone /tmp/x --keep
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import header  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], cwd: Path, log: Path, stages: dict[str, float] | None = None) -> float:
    """Wall time of ``cmd`` (output appended to ``log``); with ``stages``, also the seconds from each
    ``Running stage 'X'`` line of DVC to the next (the last stage ends with the command)."""
    import re

    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MLFLOW_TRACKING_URI", "PYTHONPATH")}
    t0 = time.perf_counter()
    current: tuple[str, float] | None = None
    with log.open("a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        for line in proc.stdout:
            f.write(line)
            m = re.search(r"Running stage '([^']+)'", line)
            if m and stages is not None:
                now = time.perf_counter()
                if current:
                    stages[current[0]] = round(now - current[1], 1)
                else:
                    stages["(set-up before the first stage)"] = round(now - t0, 1)
                current = (m.group(1), now)
        proc.wait()
    took = time.perf_counter() - t0
    if current and stages is not None:
        stages[current[0]] = round(time.perf_counter() - current[1], 1)  # incl. the leaderboard print
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed after {took:.0f} s; see {log}")
    return took


def stage_groups(stages: dict[str, float]) -> dict[str, float]:
    """Seconds per kind of stage (``train@digits_*`` CNNs apart from the rest of ``train``)."""
    cnn = ("lenet5", "alexnet", "vgg", "googlenet", "resnet", "plain", "densenet", "mobilenet")
    groups: dict[str, float] = {}
    for name, s in stages.items():
        kind = name.split("@")[0]
        if kind == "train" and name.startswith("train@digits_") and any(c in name for c in cnn):
            kind = "train (CNN family)"
        groups[kind] = round(groups.get(kind, 0.0) + s, 1)
    return groups


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clone", type=Path, default=None, help="where to clone (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the clone")
    ap.add_argument("--full", action="store_true", help="also time a forced full `dvc repro -f`")
    ap.add_argument("--noop-repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "pipeline.json")
    args = ap.parse_args(argv)
    clone = args.clone or Path(tempfile.mkdtemp(prefix="dlzoo-bench-"))
    log = clone.with_suffix(".log")
    if clone.exists():
        shutil.rmtree(clone)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip()
    stages: dict[str, float] = {}
    results = {"make_run_fresh_s": timed(["make", "run"], clone, log, stages)}
    results["stage_groups_s"], results["stages_s"] = stage_groups(stages), stages
    print(f"fresh make run: {results['make_run_fresh_s'] / 60:.1f} min", flush=True)
    for kind, secs in results["stage_groups_s"].items():
        print(f"  {kind:32s} {secs / 60:5.1f} min", flush=True)
    dvc = str(clone / ".venv" / "bin" / "dvc")
    noop = [timed([dvc, "repro"], clone, log) for _ in range(args.noop_repeats)]
    results["dvc_repro_noop_s"] = {"median": statistics.median(noop), "min": min(noop), "max": max(noop)}
    print(f"no-op dvc repro: {statistics.median(noop):.2f} s ({min(noop):.2f}-{max(noop):.2f})", flush=True)
    if args.full:
        results["dvc_repro_full_s"] = timed([dvc, "repro", "-f"], clone, log)
        print(f"full dvc repro -f: {results['dvc_repro_full_s'] / 60:.1f} min", flush=True)
    record = {**header("pipeline", __file__, argv), "commit": commit, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"-> {args.out} (log: {log})")
    if not args.keep:
        shutil.rmtree(clone, ignore_errors=True)


if __name__ == "__main__":
    main()
