"""Start-up cost of the command-line entry points, from the shell, and which of them import Lightning.

Each command runs ``--repeats`` times in a fresh interpreter (the first run also warms the OS file cache and
is dropped); the median and spread of its wall time are recorded. ``train-1-step`` trains one optimizer step
of the MLP on digits (no test, no model upload); besides its wall time (which includes the checkpoint, closing
the MLflow run and the interpreter's exit) it records the time from the shell to the first training step, the
run's ``time/startup_s`` (from the process's creation to Lightning's ``on_train_start``).
Commands that do not train must not import Lightning (checked with ``-X importtime``).

    python benchmarks/startup.py
    python benchmarks/startup.py --repeats 2 --out /tmp/startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import header  # noqa: E402

PY = sys.executable
COMMANDS = {
    "import dlzoo.train": [PY, "-c", "import dlzoo.train"],
    "train --help": [PY, "-m", "dlzoo.train", "--help"],
    "train --cfg job": [PY, "-m", "dlzoo.train", "--cfg", "job"],
    "report --help": [PY, "-m", "dlzoo.report", "--help"],
    "evaluate --help": [PY, "-m", "dlzoo.evaluate", "--help"],
    "predict --help": [PY, "-m", "dlzoo.predict", "--help"],
    "compress --help": [PY, "-m", "dlzoo.compress", "--help"],
    "claims --list": [PY, "-m", "dlzoo.claims", "--list"],
    "import lightning": [PY, "-c", "import lightning.pytorch"],
    "import torch": [PY, "-c", "import torch"],
}
NO_LIGHTNING = ("train --help", "train --cfg job", "report --help", "evaluate --help", "predict --help",
                "compress --help", "claims --list")


def train_one_step(tmp: str) -> list[str]:
    return [PY, "-m", "dlzoo.train", "experiment=digits_mlp", "trainer.max_steps=1", "train.test=false",
            "train.log_model=false", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
            f"output_dir={tmp}/run-{time.monotonic_ns()}", f"logger.tracking_uri=sqlite:///{tmp}/mlflow.db"]


def first_step_s(cmd: list[str]) -> float:
    """The ``startup_s`` that the ``train_one_step`` command ``cmd`` recorded in its run_info.json."""
    out_dir = next(a.split("=", 1)[1] for a in cmd if a.startswith("output_dir="))
    return json.loads((Path(out_dir) / "run_info.json").read_text())["startup_s"]


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return time.perf_counter() - t0


def imports_lightning(cmd: list[str], env: dict) -> bool:
    r = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True, env=env)
    return any(line.rstrip().endswith("| lightning") for line in r.stderr.splitlines())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--commands", default=None,
                    help=f"comma-separated subset of: {', '.join([*COMMANDS, 'train-1-step'])} (default: all)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "startup.json")
    args = ap.parse_args(argv)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("MLFLOW_TRACKING_URI", None)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        commands = {**COMMANDS, "train-1-step": None}
        if args.commands:
            wanted = args.commands.split(",")
            unknown = set(wanted) - set(commands)
            if unknown:
                sys.exit(f"error: unknown command(s) {sorted(unknown)}; choose from {', '.join(commands)}")
            commands = {k: v for k, v in commands.items() if k in wanted}
        for name, cmd in commands.items():
            runs = [cmd or train_one_step(tmp) for _ in range(args.repeats + 1)]
            times = [timed(c, env) for c in runs][1:]
            results[name] = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}
            if cmd is None:  # train-1-step: also the time to its first training step
                firsts = [first_step_s(c) for c in runs[1:]]
                results[name]["first_step"] = {"median_s": statistics.median(firsts), "min_s": min(firsts),
                                               "max_s": max(firsts)}
            if name in NO_LIGHTNING:
                results[name]["imports_lightning"] = imports_lightning(cmd, env)
            print(f"{name:20} {results[name]['median_s']:6.2f} s  ({min(times):.2f}-{max(times):.2f})"
                  + (f"  imports lightning: {results[name]['imports_lightning']}" if name in NO_LIGHTNING else ""),
                  flush=True)
            if "first_step" in results[name]:
                f = results[name]["first_step"]
                print(f"{'  to first step':20} {f['median_s']:6.2f} s  ({f['min_s']:.2f}-{f['max_s']:.2f})", flush=True)
    record = {**header("startup", __file__, argv), "repeats": args.repeats,
              "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"-> {args.out}")
    bad = [n for n in NO_LIGHTNING if results.get(n, {}).get("imports_lightning")]
    if bad:
        sys.exit(f"error: these commands import Lightning without training: {', '.join(bad)}")


if __name__ == "__main__":
    main()
