"""Does `train.compile` or bf16 autocast make a default experiment train faster on this machine?

For each experiment and variant, trains with the project's own command

    python -m dlzoo.train experiment=E runtime.threads=T trainer.max_epochs=N train.test=false <variant> ...

(early stopping off, so every variant runs the same epochs) and reads the per-epoch training time the run
writes to its ``history.csv`` (``time/train_epoch_s``: the training batches, not validation). The first epoch is
reported apart (warm-up); the figure compared is the median of the later epochs, as a speed-up over eager (> 1:
faster). ``torch.compile`` compiles before the first epoch (the FLOP count's forward pass), so its cost shows only
in the run's whole wall time (``wall_s``, start-up included). The last epoch's ``val/acc`` says whether the variant trains to the same
place (the test split is not used).

Variants: ``eager`` (the recipe), ``compile`` (``train.compile=true``: TorchInductor), ``bf16``
(``trainer.precision=bf16-mixed``: autocast to bfloat16 -- fast only where the CPU has bf16 instructions,
AVX-512-BF16 or AMX, or on a GPU), ``channels_last`` (``train.channels_last=true``: NHWC weights and image
batches).

    python benchmarks/speedups.py                                   # the default experiments, 1 thread, 4 epochs
    python benchmarks/speedups.py --experiments digits_lenet5 --variants eager,compile --epochs 3
"""

from __future__ import annotations

import argparse
import csv
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

VARIANTS = {
    "eager": [],
    "compile": ["train.compile=true"],
    "bf16": ["trainer.precision=bf16-mixed"],
    "channels_last": ["train.channels_last=true"],
}
EXPERIMENTS = ["digits_mlp", "digits_lenet5", "digits_resnet18", "mnist1d_cnn1d", "mnist1d_gru", "digits_mobilenet_v1",
               "digits_densenet"]


def train(experiment: str, variant: str, epochs: int, threads: int, tmp: Path) -> dict:
    run_dir = tmp / experiment / variant
    cmd = [sys.executable, "-m", "dlzoo.train", f"experiment={experiment}", f"runtime.threads={threads}",
           f"trainer.max_epochs={epochs}", "train.test=false", "train.log_model=false",
           "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "callbacks.early_stopping=null",
           f"output_dir={run_dir}", f"hydra.run.dir={run_dir}/hydra", f"logger.tracking_uri=sqlite:///{tmp / 'mlflow.db'}",
           "logger.experiment_name=speedups", *VARIANTS[variant]]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    if proc.returncode != 0:
        raise SystemExit(f"{experiment} {variant}: `{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    first, *later = [float(r["time/train_epoch_s"]) for r in rows]  # main() asks for at least 2 epochs
    val = rows[-1].get("val/acc")
    return {"first_epoch_s": round(first, 3), "epoch_s": round(statistics.median(later), 4),
            "epoch_s_range": [round(min(later), 4), round(max(later), 4)],
            "last_val_acc": float(val) if val not in (None, "") else None,
            "wall_s": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiments", default=",".join(EXPERIMENTS), help="comma-separated, of conf/experiment/")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    ap.add_argument("--epochs", type=int, default=4, help="epochs per run (the first is reported apart)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (runtime.threads)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "speedups.json")
    args = ap.parse_args(argv)
    variants = args.variants.split(",")
    if unknown := sorted(set(variants) - set(VARIANTS)):
        ap.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if "eager" not in variants:
        variants.insert(0, "eager")  # the speed-ups are over eager
    if args.epochs < 2:
        ap.error("--epochs must be at least 2: the first epoch (warm-up) is reported apart")
    from dlzoo.paths import project_root
    from dlzoo.tracking.environment import environment_tags

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="speedups_") as tmp:
        for experiment in args.experiments.split(","):
            rows = {v: train(experiment, v, args.epochs, args.threads, Path(tmp)) for v in variants}
            for v, row in rows.items():
                row["speedup"] = round(rows["eager"]["epoch_s"] / row["epoch_s"], 3)
                print(f"{experiment:18s} {v:8s} epoch {row['epoch_s']:.3f} s (first {row['first_epoch_s']:.1f} s) "
                      f"x{row['speedup']:.2f}  val/acc {row['last_val_acc']}", flush=True)
            results[experiment] = rows
    record = {**header("speedups", __file__, argv), "epochs": args.epochs,
              "threads": args.threads, "environment": environment_tags(project_root()), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
