"""Where a training step's time goes: Lightning's SimpleProfiler over a real pipeline run, per step.

For each experiment, ``dlzoo.train.run`` trains a few epochs with ``trainer.profiler=simple`` (the pipeline's
own run: default callbacks, MLflow logging, validation each epoch; regularizers off as in throughput.py; one
optimizer step per Lightning step, ``train.steps_per_execution=1``, whatever the experiment's config says) and
this reads the profiler's report (``<run>/profiler/fit-profile.txt``) into microseconds per training step:

- ``data``: the next training batch (the DataLoader; ``train_dataloader_next``);
- ``to_device``: moving it (``batch_to_device``, with the datamodule's and task's transfer hooks; training
  share);
- ``forward``: the task's training_step (forward, loss, the task's per-step bookkeeping);
- ``backward``; ``optimizer``: the optimizer step and Lightning's closure around forward, zero_grad and
  backward;
- ``zero_grad``, ``clip_hook``: Lightning's hooks of those names;
- ``callback:<Name>``: every per-batch hook of that callback together;
- ``batch_total``: Lightning's whole ``run_training_batch``, everything above but ``data``.

The profiler adds about a microsecond to every hook it times (~40 a step), so the sums slightly overstate
what the same run costs unprofiled. Results: ``--out`` (JSON) and a table on stdout.

    python benchmarks/step_profile.py                                  # softmax regression, MLP, LeNet-5
    python benchmarks/step_profile.py --experiments digits_mlp --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import header  # noqa: E402
from throughput import COMMON  # noqa: E402  (same settings as the throughput benchmark)

EXPERIMENTS = ("mnist1d_logreg", "digits_mlp", "digits_lenet5")
PER_BATCH_HOOKS = ("on_train_batch_start", "on_train_batch_end", "on_before_backward", "on_after_backward",
                   "on_before_optimizer_step", "on_before_zero_grad")


def read_report(path: Path) -> dict[str, tuple[int, float]]:
    """The SimpleProfiler's text report -> {action: (calls, total seconds)}."""
    rows = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("\t|")]
        if len(cells) == 5 and cells[0] not in ("Action", "Total"):
            try:
                rows[cells[0]] = (int(cells[2]), float(cells[3]))
            except ValueError:
                continue
    return rows


def per_step(rows: dict[str, tuple[int, float]]) -> dict[str, float]:
    """Microseconds per training step of each component (see the module's docstring)."""
    def find(pattern: str) -> tuple[int, float]:
        hits = [v for k, v in rows.items() if re.search(pattern, k)]
        return (sum(h[0] for h in hits), sum(h[1] for h in hits))

    steps = find(r"^run_training_batch$")[0]
    if not steps:
        raise SystemExit("the profile holds no training batch (run_training_batch)")
    us = lambda total: round(1e6 * total / steps, 1)  # noqa: E731
    calls_dev, t_dev = find(r"batch_to_device$")
    out = {"steps": steps,
           "data": us(find(r"train_dataloader_next$")[1]),
           "to_device": us(t_dev * steps / max(calls_dev, 1)),  # its calls include the validation batches
           "forward": us(find(r"\]SingleDeviceStrategy\.training_step$|\]DDPStrategy\.training_step$")[1]),
           "backward": us(find(r"Strategy\.backward$")[1]),
           "zero_grad": us(find(r"optimizer_zero_grad$")[1]),
           "clip_hook": us(find(r"configure_gradient_clipping$")[1])}
    # Lightning's optimizer_step runs the closure (training_step, zero_grad, backward) inside it
    out["optimizer"] = round(us(find(r"\]\w+\.optimizer_step$")[1]) - out["forward"] - out["backward"]
                             - out["zero_grad"], 1)
    callbacks = defaultdict(float)
    for action, (_, total) in rows.items():
        m = re.match(r"\[Callback\](\w+).*\.(\w+)$", action)
        if m and m.group(2) in PER_BATCH_HOOKS:
            callbacks[m.group(1)] += total
    out |= {f"callback:{name}": us(t) for name, t in sorted(callbacks.items(), key=lambda kv: -kv[1])}
    out["batch_total"] = us(find(r"^run_training_batch$")[1])
    return out


def profile(experiment: str, epochs: int, threads: int, workdir: Path) -> dict:
    import torch

    from dlzoo.configure import compose
    from dlzoo.train import run

    torch.set_num_threads(threads)
    # one optimizer step per Lightning step: the loop whose per-step parts this splits (several steps per batch,
    # train.steps_per_execution, pay those parts once per batch: benchmarks/README.md)
    cfg = compose([f"experiment={experiment}", *COMMON, "train.steps_per_execution=1", f"trainer.max_epochs={epochs}",
                   "+trainer.profiler=simple",
                   f"runtime.threads={threads}", f"logger.tracking_uri=sqlite:///{workdir / 'mlflow.db'}"])
    out_dir = workdir / experiment
    run(cfg, out_dir, overrides=[])
    return per_step(read_report(out_dir / "profiler" / "fit-profile.txt"))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "step_profile.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.experiments:
            results[name] = profile(name, args.epochs, args.threads, Path(tmp))
    keys = list(dict.fromkeys(k for r in results.values() for k in r))
    print("µs per training step | " + " | ".join(args.experiments))
    for k in keys:
        print(f"{k} | " + " | ".join(str(results[n].get(k, "")) for n in args.experiments))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**header("step_profile", __file__, argv), "epochs": args.epochs, "threads": args.threads, "us_per_step": results}, indent=2))


if __name__ == "__main__":
    main()
