"""Lightning's MLFlowLogger with metrics written in batches: one store write every few seconds, not per call.

Each ``MlflowClient.log_batch`` into the sqlite store costs ~9 ms of Python (SQLAlchemy session, run lookup,
commit) whatever its size, measured in this repo (benchmarks/README.md). With ``synchronous=False`` that work
runs in MLflow's background thread, but it still holds the GIL: a LeNet-5 epoch on digits (~0.45 s) made
4-5 such writes (the learning rate every ``log_every_n_steps`` steps, the epoch's train and val figures) and
trained ~9% slower than a raw PyTorch loop for that reason alone. Here metrics are kept in memory with their
own step and timestamp and written as one ``log_batch`` (chunks of 1,000, MLflow's limit) when
``flush_every_s`` seconds have passed since the last write, when Lightning finalizes the logger (end of fit
or test, also after an exception), and on ``flush()`` (``dlzoo.train`` calls it before the MLflow run ends,
also when the run fails). What reaches the store is the same metrics, steps and timestamps; the MLflow UI
sees them at most ``flush_every_s`` late.
``save()`` does not flush: Lightning calls it after every ``log_metrics`` of its own (epoch-end figures), which
would bring back one store write per call.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping

from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

MAX_BATCH = 1000  # metrics per log_batch call (MLflow's limit)


class BufferedMLFlowLogger(MLFlowLogger):
    def __init__(self, *args, flush_every_s: float = 5.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.flush_every_s = flush_every_s
        self._pending: list = []
        self._last_flush = time.monotonic()
        # Lightning's step (its batches) -> the step recorded; set where a batch holds several optimizer steps
        # (dlzoo.training.multistep.step_map), so that every run's curves share one axis: optimizer steps
        self.step_map = None

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self.step_map is not None and step is not None:
            step = self.step_map(step)
        self.log_metrics_at_step(metrics, step)

    @rank_zero_only
    def log_metrics_at_step(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """``log_metrics`` at ``step`` as given (no ``step_map``)."""
        from mlflow.entities import Metric

        timestamp_ms = int(time.time() * 1000)
        for k, v in metrics.items():
            if isinstance(v, str):
                continue  # MLFlowLogger discards string values too
            name = f"{self._prefix}{self.LOGGER_JOIN_CHAR}{k}" if self._prefix else k
            key = re.sub("[^a-zA-Z0-9_/. -]+", "", name)
            if key != name:
                rank_zero_warn(f"MLflow allows only '_', '/', '.', '-' and ' ' besides letters and digits in a metric "
                               f"name: {name!r} logged as {key!r}", category=RuntimeWarning)
            self._pending.append(Metric(key=key, value=float(v), timestamp=timestamp_ms, step=step or 0))
        if time.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush()

    @rank_zero_only
    def flush(self) -> None:
        """Write the buffered metrics (queued for MLflow's writer thread when ``synchronous=False``)."""
        pending, self._pending = self._pending, []
        self._last_flush = time.monotonic()
        for i in range(0, len(pending), MAX_BATCH):
            self.experiment.log_batch(run_id=self.run_id, metrics=pending[i:i + MAX_BATCH], **self._log_batch_kwargs)

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        if self._initialized:
            self.flush()
        super().finalize(status)
