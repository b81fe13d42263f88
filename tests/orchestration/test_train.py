"""Training end to end with the real Lightning Trainer and a real MLflow sqlite store."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import mlflow
import pytest

from conftest import FAST, SMALL_CNN1D, compose, run_cli, train_until_checkpoint


def _train(project: Path, overrides: list[str], name: str = "run") -> dict:
    from dlzoo.train import run

    cfg = compose([*FAST, *overrides])
    return run(cfg, project / "out" / name, list(overrides))


def _client(project: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


def test_fast_dev_run(project):
    info = _train(project, ["experiment=digits_mlp", "trainer.fast_dev_run=true"])
    assert info["status"] == "FINISHED"
    run = _client(project).get_run(info["run_id"])
    assert run.info.status == "FINISHED"
    # fast_dev_run swaps Lightning's loggers for a dummy: only what dlzoo logs itself is there
    assert run.data.metrics["model/num_params"] == info["num_params"] > 0
    assert run.data.metrics["model/flops"] == info["flops"] > 0  # counted with torch.utils.flop_counter
    assert run.data.params["trainer.fast_dev_run"] == "True"
    assert "train/loss" not in run.data.metrics


def test_max_steps_stops_mid_epoch_before_any_validation(project):
    # 3 steps of a 20-batch epoch: no validation ever ran; early stopping (monitor val/loss) must not fail on it
    info = _train(project, ["experiment=digits_mlp", "trainer.max_steps=3", "train.test=false"])
    assert info["status"] == "FINISHED"
    run = _client(project).get_run(info["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["trainer.max_steps"] == "3"
    assert "val/loss" not in run.data.metrics


def test_end_to_end_run_is_recorded_in_mlflow(project):
    info = _train(project, ["experiment=digits_mlp", "trainer.max_epochs=2", "scheduler=cosine"])
    client = _client(project)
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "digits_mlp-adam-lr0.001-s42"
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == "classify-digits"
    # params: the flattened composed config
    p = run.data.params
    assert p["model.name"] == "mlp" and p["optimizer.lr"] == "0.001" and p["data.batch_size"] == "64"
    assert p["scheduler._target_"].endswith("CosineAnnealingLR")
    # per-epoch curves and the LR
    for key in ("train/loss", "val/loss", "val/acc"):
        hist = client.get_metric_history(info["run_id"], key)
        assert len(hist) == 2, key
    lr = [m for m in run.data.metrics if m.startswith("lr-")]
    assert lr, run.data.metrics.keys()
    # the LR per optimizer step: every trainer.log_every_n_steps (10) of 2 epochs x 20 batches
    assert len(client.get_metric_history(info["run_id"], lr[0])) == 4
    # test metrics agree with what the trainer returned
    assert run.data.metrics["test/acc"] == pytest.approx(info["test"]["test/acc"])
    assert 0.5 < run.data.metrics["test/acc"] <= 1.0
    # tags
    t = run.data.tags
    for k in ("git.commit", "git.dirty", "data.dvc.md5", "command", "mlflow.note.content"):
        assert k in t, k
    assert "experiment=digits_mlp" in t["mlflow.note.content"]
    # artifacts: config, best checkpoint, MLflow model, plots
    names = {a.path for a in client.list_artifacts(info["run_id"])}
    assert {"config.yaml", "checkpoints", "plots", "history.csv"} <= names
    plots = {a.path for a in client.list_artifacts(info["run_id"], "plots")}
    assert {"plots/learning_curves.png", "plots/confusion_matrix.png"} <= plots
    assert [a for a in client.list_artifacts(info["run_id"], "checkpoints") if a.path.endswith(".ckpt")]
    # the model is an MLflow PyTorch model that loads and predicts: raw 8x8 digits in, class probabilities out
    model = mlflow.pytorch.load_model(f"runs:/{info['run_id']}/model")
    import torch

    probs = model(torch.full((3, 8, 8), 16.0))
    assert probs.shape == (3, 10) and torch.allclose(probs.sum(1), torch.ones(3))


def test_same_seed_same_test_metrics(project):
    # the pipeline's cnn1d (BatchNorm, augmentation, dropout: every source of randomness) at a quarter of its width
    small = [*SMALL_CNN1D, "trainer.max_epochs=2", "train.log_model=false"]
    a = _train(project, small, "a")
    b = _train(project, small, "b")
    assert a["test"] == b["test"]
    c = _train(project, [*small, "seed=7"], "c")
    assert c["test"] != a["test"]


def test_a_second_run_into_the_same_folder_owns_last_ckpt(project):
    """Lightning would write last-v1.ckpt beside an old last.ckpt; run_info (and train.resume=last) must point
    at the new run's weights."""
    import torch

    tiny = ["experiment=digits_mlp", "model.hidden=[16]", "trainer.max_epochs=1", "train.log_model=false",
            "train.test=false"]
    first = _train(project, tiny, "same")
    second = _train(project, [*tiny, "seed=3"], "same")
    ckpts = project / "out" / "same" / "checkpoints"
    assert second["last_ckpt"] == first["last_ckpt"] == str(ckpts / "last.ckpt")
    assert not list(ckpts.glob("last-v*.ckpt"))
    best = torch.load(second["best_ckpt"], weights_only=True)["state_dict"]
    last = torch.load(second["last_ckpt"], weights_only=True)["state_dict"]
    assert all(torch.equal(best[k], last[k]) for k in best)  # one epoch: the second run's only weights


def test_failed_run_is_marked_failed_and_keeps_checkpoint(project):
    # EarlyStopping on a metric that is never logged fails at the end of the first validation epoch.
    with pytest.raises(RuntimeError, match="val/nope"):
        _train(project, ["experiment=digits_mlp", "trainer.max_epochs=3", "callbacks.early_stopping.monitor=val/nope",
                         "train.log_model=false"])
    runs = _client(project).search_runs(
        [_client(project).get_experiment_by_name("classify-digits").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    assert "val/nope" in runs[0].data.tags["dlzoo.error"]
    assert (project / "out" / "run" / "checkpoints" / "on_exception.ckpt").exists()


@pytest.mark.slow  # 70 s; `make test` covers the same path by SIGTERM (test_operate.py)
def test_interrupted_run_is_marked_killed_and_resumes(project):
    out = project / "out" / "killed"
    proc, last = train_until_checkpoint(project, out)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    client = _client(project)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.status for r in runs] == ["KILLED"], output[-2000:]
    assert (out / "checkpoints" / "on_exception.ckpt").exists() and last.exists()
    assert "KILLED" in output and "checkpoints kept" in output
    # resume from last.ckpt: fitting continues where it stopped instead of starting over
    import torch

    done = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    info = _train(project, [*SMALL_CNN1D, f"trainer.max_epochs={done + 2}", "train.resume=last",
                            "train.log_model=false"], "killed")
    assert info["status"] == "FINISHED"
    history = client.get_metric_history(info["run_id"], "train/loss")
    assert [m.step for m in history] and min(m.step for m in history) > 0  # no epoch-0 restart


@pytest.mark.parametrize("args,expect", [
    (["model=nosuchnet"], ["Available options in 'model'", "lenet5", "mlp"]),
    (["optimizer.lr=-1"], ["optimizer.lr=-1", "must be a number > 0"]),
    (["data.batch_size=0"], ["data.batch_size=0", "integer >= 1"]),
    (["model=mlp", "model.dropout=1"], ["model.dropout=1", "[0, 1)"]),
])
def test_cli_refuses_bad_input_before_training(project, args, expect):
    r = run_cli(["-m", "dlzoo.train", *args], cwd=project, timeout=120)
    assert r.returncode != 0
    for e in expect:
        assert e in r.stderr, r.stderr[-3000:]
    # nothing was trained or recorded
    db = project / "mlflow.db"
    if db.exists():
        assert sqlite3.connect(db).execute("select count(*) from runs").fetchone()[0] == 0


def test_missing_splits_name_the_fix(project):
    (project / "artifacts" / "splits").unlink()
    r = run_cli(["-m", "dlzoo.train", "model=mlp"], cwd=project, timeout=120)
    assert r.returncode == 2
    assert "dvc repro prepare" in r.stderr and "x_train.npy" in r.stderr


def test_commands_that_do_not_train_do_not_import_lightning(project):
    code = ("import sys, dlzoo.train, dlzoo.report.cli, dlzoo.configure, dlzoo.evaluate, dlzoo.claims.cli, "
            "dlzoo.claims.spec, dlzoo.claims.runner; "
            "bad = [m for m in ('lightning', 'torch', 'mlflow') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    r = run_cli(["-c", code], cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_cli(["-m", "dlzoo.train", "--cfg", "job", "model=mlp"], cwd=project)
    assert r.returncode == 0 and "name: mlp" in r.stdout
