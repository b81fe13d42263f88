"""A callback that keeps the per-epoch metrics in memory (for plots and the DVC plots CSV)."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import lightning.pytorch as pl

KEYS = ("train/loss", "train/acc", "val/loss", "val/acc")
PROBE_PREFIXES = ("grad/", "update/", "hessian/")  # epoch figures of dlzoo.training.probes, kept when those callbacks run
TIME_KEY = "time/train_epoch_s"  # wall time of the epoch's training batches (data, steps, logging; not validation)


class EpochHistory(pl.Callback):
    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self._started: float | None = None
        self._train_s: float | None = None
        self.startup_s: float | None = None  # process start -> the first training batch (``time/startup_s``)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # from the process's creation (as the OS records it), so the interpreter's start and every import count
        import psutil

        self.startup_s = time.time() - psutil.Process().create_time()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started, self._train_s = time.perf_counter(), None

    def _stop_clock(self) -> None:
        if self._started is not None and self._train_s is None:
            self._train_s = time.perf_counter() - self._started

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:  # validation runs inside the training epoch, before its end hook
            self._stop_clock()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._stop_clock()
        m = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch}
        row.update({k: float(m[k]) for k in KEYS if k in m})
        row.update({k: float(v) for k, v in m.items() if k.startswith(PROBE_PREFIXES)})
        row[TIME_KEY] = self._train_s
        self.rows.append(row)

    def series(self) -> dict[str, list[tuple[int, float]]]:
        return {k: [(r["epoch"], r[k]) for r in self.rows if k in r] for k in KEYS}

    def write_csv(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            probes = sorted({k for r in self.rows for k in r if k.startswith(PROBE_PREFIXES)})
            w = csv.DictWriter(f, fieldnames=["epoch", *KEYS, TIME_KEY, *probes])
            w.writeheader()
            for r in self.rows:
                w.writerow(r)


class SaveOnException(pl.Callback):
    """Writes ``on_exception.ckpt`` when fitting is interrupted or crashes, so no work is lost.

    Lightning's own ``OnExceptionCheckpoint`` is not used because its presence makes every
    ``fit(ckpt_path=None)`` resume from ``last`` silently; resuming is explicit here (``train.resume``).
    """

    def __init__(self, dirpath: Path) -> None:
        self.path = Path(dirpath) / "on_exception.ckpt"

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # after a NaN/Inf loss the weights are not worth keeping: last.ckpt holds the last good epoch
        if trainer.state.fn == "fit" and trainer.global_step > 0 and not isinstance(exception, FloatingPointError):
            trainer.save_checkpoint(self.path)
