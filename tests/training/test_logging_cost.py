"""The cheap training-metric paths: per-epoch train metrics and the buffered MLflow logger."""

from __future__ import annotations

import mlflow
import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy

from dlzoo.training.epoch_log import TrainEpochLogging


class _Trainer:
    num_training_batches = 4


class _Module(TrainEpochLogging):
    def __init__(self) -> None:
        self._trainer = self.trainer = _Trainer()
        self.logged: dict[str, float] = {}

    def log(self, name, value, **kwargs) -> None:
        self.logged[name] = float(value)


def test_epoch_train_metrics_equal_torchmetrics_macro_accuracy_and_weighted_loss():
    torch.manual_seed(0)
    classes, module, ref = 5, _Module(), MulticlassAccuracy(5)
    module.on_train_epoch_start()
    losses, sizes = [], []
    for batch_idx, n in enumerate([16, 16, 16, 7]):  # a short last batch weighs less in the mean loss
        logits = torch.randn(n, classes)
        target = torch.randint(0, classes - 1, (n,))  # class 4 never appears: left out of the macro mean
        loss = torch.nn.functional.cross_entropy(logits, target)
        module.log_train(batch_idx, loss, logits, target)
        ref.update(logits, target)
        losses.append(float(loss) * n)
        sizes.append(n)
        assert ("train/acc" in module.logged) == (batch_idx == 3)  # logged once, on the epoch's last batch
    assert module.logged["train/loss"] == pytest.approx(sum(losses) / sum(sizes), rel=1e-6)
    assert module.logged["train/acc"] == pytest.approx(float(ref.compute()), rel=1e-6)


def _history(client, run_id, key):
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_buffered_logger_writes_in_batches_with_the_original_steps(tmp_path):
    from dlzoo.tracking.logger import BufferedMLFlowLogger

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("buffered")
    run_id = client.create_run(exp).info.run_id
    logger = BufferedMLFlowLogger(experiment_name="buffered", tracking_uri=uri, run_id=run_id,
                                  synchronous=True, flush_every_s=3600)
    for step in range(3):
        logger.log_metrics({"train/loss": 1.0 / (step + 1), "lr-Adam": 0.1}, step=step)
    logger.save()  # Lightning calls save() after each of its log_metrics calls: no write
    assert _history(client, run_id, "train/loss") == []  # kept in memory until a flush
    logger.flush()  # dlzoo.train flushes before the MLflow run ends
    assert _history(client, run_id, "train/loss") == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert len(_history(client, run_id, "lr-Adam")) == 3

    for step in range(3, 1203):  # more than MLflow's 1,000 metrics per log_batch call: written in chunks
        logger.log_metrics({"lr-Adam": 0.01}, step=step)
    with pytest.warns(RuntimeWarning, match="logged as 'val acc'"):
        logger.log_metrics({"val acc%": 0.5}, step=1203)
    logger.finalize("success")  # Lightning finalizes the logger at the end of fit
    assert len(_history(client, run_id, "lr-Adam")) == 1203
    assert _history(client, run_id, "val acc") == [(1203, 0.5)]


def test_buffered_logger_with_flush_every_0_writes_each_call(tmp_path):
    from dlzoo.tracking.logger import BufferedMLFlowLogger

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("e")).info.run_id
    logger = BufferedMLFlowLogger(experiment_name="e", tracking_uri=uri, run_id=run_id, synchronous=True,
                                  flush_every_s=0)
    logger.log_metrics({"a": 2.0}, step=7)
    assert _history(client, run_id, "a") == [(7, 2.0)]
