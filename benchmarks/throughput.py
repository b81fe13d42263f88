"""Training throughput of the pipeline against a raw PyTorch loop, side by side in one process.

For each model (a real experiment config, composed by Hydra), the same network, data (the datamodule's
train loader), optimizer and loss are trained twice per repeat, alternating:

- **raw**: ``for x, y in loader: loss = loss_fn(net(x), y); opt.zero_grad(); loss.backward(); opt.step()``;
- **dlzoo**: ``dlzoo.train.run`` -- the real Lightning Trainer with the default callbacks (checkpoints,
  LR monitor, history), MLflow logging into a temporary sqlite store, validation every epoch;
- **lightning** (the floor, for reference): a bare ``Trainer`` over the same task -- validation every epoch,
  no logger, no callbacks, no checkpoints -- i.e. what Lightning's loop itself costs before dlzoo adds anything.

Throughput is training samples/s over the training batches of each epoch after the first (warm-up), the
median of those epochs; validation is not counted (the raw loop has none). Augmentation and regularizers
are off in both (``regularizer=[]``) so both do the same arithmetic; early stopping is off so both run
every epoch. Results: median and spread over repeats, written to ``--out`` (JSON) and printed.

Threads are pinned to 1 by default: on a 2-core machine two intra-op threads share the cores with the Python
main thread and MLflow's writer thread, and the ratio then swung 0.62-1.09 between repeats (raw loop 0.30-0.40 s
per epoch) -- a measurement of the scheduler, not of the pipeline. ``--threads N`` measures with N.

    python benchmarks/throughput.py                       # every model of MODELS; 3 repeats x 5 epochs
    python benchmarks/throughput.py --models lenet5 --epochs 3 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import header  # noqa: E402

# model -> the experiment it comes from, and overrides that make it the size the benchmark names
MODELS = {
    "lenet5": ["experiment=digits_lenet5"],  # LeNet-5 on digits resized to 32x32, batch 64
    "resnet18": ["experiment=digits_resnet18", "model.image_size=32"],  # ResNet-18 (width 0.25) at 32x32
    "gru": ["experiment=mnist1d_gru"],  # GRU on MNIST-1D, 40 steps
    # tiny steps, where what the framework adds per step shows most (as on a GPU)
    "mlp": ["experiment=digits_mlp"],  # MLP 256-128 on digits (64 inputs), batch 64
    "logreg": ["experiment=mnist1d_logreg"],  # softmax regression on MNIST-1D (40 inputs)
}
COMMON = ["regularizer=[]", "callbacks.early_stopping=null", "train.test=false", "train.log_model=false",
          "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def _pieces(cfg):
    """(datamodule, network, task) built as ``dlzoo.train.run`` builds them, after seeding."""
    import lightning.pytorch as pl

    from dlzoo import builders

    pl.seed_everything(cfg.seed, verbose=False)
    dm = builders.build_datamodule(cfg)
    dm.setup()
    net = builders.build_network(cfg, dm.input_shape, dm.num_classes)
    return dm, net, builders.build_task(cfg, net, dm.num_classes)


def raw_epochs(cfg, epochs: int) -> list[tuple[int, float]]:
    """(samples, seconds) of each epoch of a plain PyTorch loop over the same pieces the pipeline uses."""
    import torch

    dm, net, task = _pieces(cfg)  # the task for its optimizer (decay groups) and loss only
    opt = task.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    loss_fn = task.loss_fn
    net.train()
    out = []
    for _ in range(epochs):
        n, t0 = 0, time.perf_counter()
        for x, y in dm.train_dataloader():
            logits = net(x)
            logits = logits[0] if isinstance(logits, (tuple, list)) else logits
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.trainer.get("gradient_clip_val"):
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.trainer.gradient_clip_val)
            opt.step()
            n += len(y)
        out.append((n, time.perf_counter() - t0))
    return out


def dlzoo_epochs(cfg, epochs: int, workdir: Path) -> list[tuple[int, float]]:
    """(samples, seconds of training batches) of each epoch of the real pipeline run (history.csv)."""
    import csv

    from dlzoo.train import run

    out_dir = workdir / f"run-{time.monotonic_ns()}"
    run(cfg, out_dir, overrides=[])
    n = _train_size(cfg)
    with (out_dir / "history.csv").open() as f:
        return [(n, float(r["time/train_epoch_s"])) for r in csv.DictReader(f)][:epochs]


def lightning_epochs(cfg, epochs: int) -> list[tuple[int, float]]:
    """(samples, seconds of training batches) of each epoch of a bare Trainer over the same task."""
    import lightning.pytorch as pl

    from dlzoo.training.history import EpochHistory

    dm, _, task = _pieces(cfg)
    history = EpochHistory()  # only its clock (a callback with three hooks)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         deterministic=cfg.trainer.deterministic, callbacks=[history])
    trainer.fit(task, datamodule=dm)
    n = len(dm.datasets["train"])
    return [(n, r["time/train_epoch_s"]) for r in history.rows][:epochs]


def _train_size(cfg) -> int:
    from dlzoo import builders

    dm = builders.build_datamodule(cfg)
    dm.setup()
    return len(dm.datasets["train"])


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def steady(epochs: list[tuple[int, float]]) -> float:
    """Median samples/s of the epochs after the first."""
    rest = epochs[1:] or epochs
    return statistics.median(n / s for n, s in rest)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0 = torch's choice)")
    ap.add_argument("--steps-per-execution", type=int, default=None,
                    help="train.steps_per_execution of the dlzoo arm (default: the experiment's own)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "throughput.json")
    args = ap.parse_args(argv)
    import torch
    from omegaconf import OmegaConf

    from dlzoo.configure import compose
    from dlzoo.console import quiet

    quiet()
    if args.threads:
        torch.set_num_threads(args.threads)  # 0: torch's choice
    unknown = set(args.models.split(",")) - set(MODELS)
    if unknown:
        sys.exit(f"error: unknown model(s) {sorted(unknown)}; choose from {', '.join(MODELS)}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        for name in args.models.split(","):
            spe = [] if args.steps_per_execution is None else [f"train.steps_per_execution={args.steps_per_execution}"]
            cfg = compose([*MODELS[name], *COMMON, *spe, f"trainer.max_epochs={args.epochs}",
                           f"logger.tracking_uri={store}",
                           f"runtime.threads={args.threads or 'null'}"])  # the pipeline arm at the raw loop's count
            OmegaConf.set_readonly(cfg, False)
            raw, ours, floor = [], [], []
            for rep in range(args.repeats):
                raw.append(steady(raw_epochs(cfg, args.epochs)))
                ours.append(steady(dlzoo_epochs(cfg, args.epochs, Path(tmp))))
                floor.append(steady(lightning_epochs(cfg, args.epochs)))
                print(f"{name} repeat {rep + 1}/{args.repeats}: raw {raw[-1]:,.0f}/s  dlzoo {ours[-1]:,.0f}/s  "
                      f"ratio {ours[-1] / raw[-1]:.3f}  (bare Lightning {floor[-1] / raw[-1]:.3f})", flush=True)
            ratios = [o / r for o, r in zip(ours, raw)]
            floors = [f / r for f, r in zip(floor, raw)]
            results[name] = {"overrides": MODELS[name] + COMMON + spe, "epochs": args.epochs, "repeats": args.repeats,
                             "raw_samples_per_s": _spread(raw), "dlzoo_samples_per_s": _spread(ours),
                             "ratio": _spread(ratios), "lightning_samples_per_s": _spread(floor),
                             "lightning_ratio": _spread(floors)}
    record = {**header("throughput", __file__, argv), "threads": torch.get_num_threads(), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\n{'model':10} {'raw samples/s':>14} {'dlzoo samples/s':>16} {'ratio (min-max)':>20} "
          f"{'bare Lightning ratio':>22}")
    for name, r in results.items():
        q, f = r["ratio"], r["lightning_ratio"]
        print(f"{name:10} {r['raw_samples_per_s']['median']:>14,.0f} {r['dlzoo_samples_per_s']['median']:>16,.0f} "
              f"{q['median']:>8.3f} ({q['min']:.3f}-{q['max']:.3f}) {f['median']:>8.3f} ({f['min']:.3f}-{f['max']:.3f})")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
