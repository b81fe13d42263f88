"""The accelerator check: what dlzoo does on one GPU and on all GPUs of a node, in one short run.

1. **experiments**: every experiment of the default pipeline (``pipeline.experiments``) trains one epoch on
   one GPU (``trainer=gpu``: bf16-mixed) and is tested; status, wall time and the test score per experiment.
2. **ddp**: LeNet-5 on all GPUs of the node (``trainer=ddp``), one process per GPU launched by Lightning, into
   a fresh MLflow store: exactly one FINISHED run is expected, with every test sample counted once.
3. **throughput**: bf16-mixed training samples/s of LeNet-5, ResNet-18 and the GRU, the pipeline
   (``dlzoo.train.run``) against a raw PyTorch loop (same network, data, optimizer, loss, autocast) on the
   same GPU, as ``benchmarks/throughput.py`` compares them on the CPU.

Results go to ``benchmarks/results/gpu_check.json`` (``--out``) and are printed. ``--dry-run`` runs the same
code on the CPU with tiny limits (``trainer=cpu``, DDP as ``trainer=ddp_cpu``): a check of the script itself.

    python benchmarks/gpu_check.py                    # on a GPU machine (make gpu-check)
    python benchmarks/gpu_check.py --dry-run --experiments digits_mlp --models lenet5 --out /tmp/check.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from machine import header  # noqa: E402
from throughput import MODELS, _pieces, dlzoo_epochs, steady  # noqa: E402

QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "train.log_model=false"]
DRY = ["trainer.limit_train_batches=2", "++trainer.limit_val_batches=2"]


def _setting(dry: bool) -> dict[str, list[str]]:
    """The trainer overrides of each part: one GPU, all GPUs of the node; the CPU in a dry run."""
    if dry:
        return {"one": ["trainer=cpu", "trainer.precision=bf16-mixed", *DRY],
                "all": ["trainer=ddp_cpu", *DRY]}
    return {"one": ["trainer=gpu"], "all": ["trainer=ddp"]}


def experiments(names: list[str], trainer: list[str], workdir: Path) -> dict[str, dict]:
    """One epoch of each experiment, tested; in this process, one after the other."""
    from dlzoo.configure import compose
    from dlzoo.train import run

    out = {}
    for name in names:
        cfg = compose([f"experiment={name}", *trainer, "trainer.max_epochs=1", *QUIET,
                       f"logger.tracking_uri=sqlite:///{workdir / 'experiments.db'}"])
        started = time.perf_counter()
        try:
            info = run(cfg, workdir / "runs" / name, [])
            test = info.get("test") or {}
            out[name] = {"status": info["status"], "wall_s": round(time.perf_counter() - started, 2),
                         **{k: round(v, 4) for k, v in test.items() if k in ("test/acc", "test/r2", "test/loss")}}
        except Exception as exc:  # noqa: BLE001 -- one failing experiment is a result, the check goes on
            out[name] = {"status": "FAILED", "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
        print(f"{name}: {out[name]}", flush=True)
    return out


def ddp(trainer: list[str], workdir: Path) -> dict:
    """LeNet-5 under DDP (processes launched by Lightning) into a fresh store: its MLflow runs."""
    import mlflow

    store = f"sqlite:///{workdir / 'ddp.db'}"
    cmd = [sys.executable, "-m", "dlzoo.train", "experiment=digits_lenet5", *trainer, "trainer.max_epochs=1",
           *QUIET, f"logger.tracking_uri={store}", f"output_dir={workdir / 'ddp'}", f"hydra.run.dir={workdir / 'ddp'}"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    client = mlflow.MlflowClient(store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()]) if proc.returncode == 0 else []
    result = {"returncode": proc.returncode, "wall_s": round(time.perf_counter() - started, 2), "runs": len(runs),
              "statuses": [r.info.status for r in runs]}
    if runs:
        result |= {"world_size_batch": runs[0].data.params.get("data.global_batch_size"),
                   "test/num_samples": runs[0].data.metrics.get("test/num_samples"),
                   "test/acc": runs[0].data.metrics.get("test/acc")}
    else:
        result["stderr_tail"] = proc.stderr[-2000:]
    result["ok"] = result["statuses"] == ["FINISHED"] and result.get("test/num_samples") == 360
    print(f"ddp: {result}", flush=True)
    return result


def raw_epochs(cfg, epochs: int) -> list[tuple[int, float]]:
    """(samples, seconds) per epoch of a plain PyTorch loop on the configured device, under the same autocast
    as Lightning's bf16-mixed (the loop of benchmarks/throughput.py, moved to the device)."""
    import torch

    from dlzoo.training.accelerators import device

    dev = device(cfg.trainer)
    dm, net, task = _pieces(cfg)
    net.to(dev).train()
    opt = task.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    out = []
    for _ in range(epochs):
        n, t0 = 0, time.perf_counter()
        for x, y in dm.train_dataloader():
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                logits = net(x)
                logits = logits[0] if isinstance(logits, (tuple, list)) else logits
                loss = task.loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
        if dev.type == "cuda":
            torch.cuda.synchronize()  # the epoch's kernels have finished before the clock stops
        out.append((n, time.perf_counter() - t0))
    return out


def throughput(models: list[str], trainer: list[str], epochs: int, workdir: Path) -> dict[str, dict]:
    from omegaconf import OmegaConf

    from dlzoo.configure import compose

    out = {}
    for name in models:
        cfg = compose([*MODELS[name], "regularizer=[]", "callbacks.early_stopping=null", "train.test=false", *QUIET,
                       *(o for o in trainer if "trainer.limit_" not in o), f"trainer.max_epochs={epochs}",
                       f"logger.tracking_uri=sqlite:///{workdir / 'throughput.db'}"])
        OmegaConf.set_readonly(cfg, False)
        raw, ours = steady(raw_epochs(cfg, epochs)), steady(dlzoo_epochs(cfg, epochs, workdir))
        out[name] = {"precision": cfg.trainer.precision, "raw_samples_per_s": round(raw, 1),
                     "dlzoo_samples_per_s": round(ours, 1), "ratio": round(ours / raw, 3)}
        print(f"{name}: {out[name]}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    from dlzoo.configure import compose

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="on the CPU with tiny limits (checks the script)")
    ap.add_argument("--experiments", default=None, help="comma-separated (default: pipeline.experiments)")
    ap.add_argument("--models", default=",".join(MODELS), help=f"throughput models, from {', '.join(MODELS)}")
    ap.add_argument("--epochs", type=int, default=None, help="throughput epochs (default 5; 2 in a dry run)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "gpu_check.json")
    args = ap.parse_args(argv)
    from dlzoo.training.accelerators import check_trainer
    from dlzoo.errors import ConfigError
    from dlzoo.console import quiet

    quiet()
    setting = _setting(args.dry_run)
    try:
        check_trainer(compose(setting["one"]).trainer)
    except ConfigError as exc:
        print(f"error: {exc} (or --dry-run)", file=sys.stderr)
        return 2
    names = args.experiments.split(",") if args.experiments else list(compose().pipeline.experiments)
    epochs = args.epochs or (2 if args.dry_run else 5)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        record = {**header("gpu_check", __file__, argv), "dry_run": args.dry_run, "trainer": setting,
                  "experiments": experiments(names, setting["one"], work), "ddp": ddp(setting["all"], work),
                  "throughput": throughput(args.models.split(","), setting["one"], epochs, work)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    failed = [n for n, r in record["experiments"].items() if r["status"] != "FINISHED"]
    print(f"-> {args.out}: {len(names) - len(failed)}/{len(names)} experiments FINISHED"
          + (f" (failed: {', '.join(failed)})" if failed else "") + f"; DDP {'ok' if record['ddp']['ok'] else 'NOT ok'}")
    return 1 if failed or not record["ddp"]["ok"] else 0


if __name__ == "__main__":
    sys.exit(main())
