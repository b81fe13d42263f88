"""Scale-out and operations: DDP on 2 CPU processes, parallel sweeps into one store, a real MLflow server,
faults (SIGTERM, NaN loss, bad checkpoints, unreachable server)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import mlflow
import pytest
import requests

from conftest import FAST, SMALL_CNN1D, compose, free_port, run_cli, start_mlflow, train_until_checkpoint


def _client(project: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


def _all_runs(client: mlflow.MlflowClient) -> list:
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.mark.slow  # long (subprocesses, services): `make test-slow` runs it
def test_ddp_cpu_one_run_synced_metrics_no_duplicates(project):
    common = ["experiment=digits_mlp", "trainer.max_epochs=3", "train.log_model=false", *FAST]
    r = run_cli(["-m", "dlzoo.train", "trainer=ddp_cpu", *common, "hydra.run.dir=outputs/ddp"], cwd=project, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = _all_runs(_client(project))
    assert len(runs) == 1, "rank 1 must not create an MLflow run"
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["data.global_batch_size"] == "128"  # 64 per device x 2 processes
    # every test sample counted exactly once across the two ranks (360 = the digits test split)
    assert run.data.metrics["test/num_samples"] == 360
    assert len(_client(project).get_metric_history(run.info.run_id, "val/acc")) == 3
    # one Hydra output folder for the job
    assert [p.name for p in (project / "outputs").iterdir()] == ["ddp"]
    assert (project / "outputs/ddp/run_info.json").exists()
    # same band as one process
    from dlzoo.train import run as train

    single = train(compose(common), project / "single", [])
    assert abs(single["test"]["test/acc"] - run.data.metrics["test/acc"]) < 0.05


def test_joblib_multirun_parallel_jobs_share_one_store_with_parent(project):
    r = run_cli(["-m", "dlzoo.train", "--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                 "experiment=digits_mlp", "model=mlp,logreg", "trainer.max_epochs=2", "train.log_model=false",
                 "hydra.sweep.dir=multirun/s", *FAST], cwd=project, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = _all_runs(_client(project))
    parent = [x for x in runs if x.data.tags.get("dlzoo.sweep") == "parent"]
    children = [x for x in runs if x.data.tags.get("mlflow.parentRunId")]
    assert len(parent) == 1 and len(children) == 2 and len(runs) == 3
    p = parent[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {p.info.run_id}
    assert {c.data.params["model.name"] for c in children} == {"mlp", "logreg"}
    assert all(x.info.status == "FINISHED" for x in runs)
    best = max(children, key=lambda c: c.data.metrics["test/acc"])
    assert p.data.tags["best_run_id"] == best.info.run_id
    assert p.data.metrics["best/test/acc"] == pytest.approx(best.data.metrics["test/acc"])
    assert p.data.metrics["sweep/trials"] == 2


def test_slurm_launcher_config_composes(project):
    r = run_cli(["-m", "dlzoo.train", "--cfg", "hydra", "hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                cwd=project)
    assert r.returncode == 0, r.stderr
    assert "SlurmLauncher" in r.stdout and "partition: gpu" in r.stdout


@pytest.mark.slow  # 30 s; the SLURM launcher's config is checked in make test (test above)
def test_submitit_local_executor_runs_a_trial(project):
    r = run_cli(["-m", "dlzoo.train", "--multirun", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5",
                 "experiment=digits_mlp", "model=logreg", "trainer.max_epochs=1", "train.log_model=false",
                 "hydra.sweep.dir=multirun/local", *FAST], cwd=project, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = _all_runs(_client(project))
    assert len(runs) == 2 and all(x.info.status == "FINISHED" for x in runs)


@pytest.fixture
def mlflow_server(tmp_path):
    proc, url = start_mlflow("server", ["--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                                        "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"])
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_training_against_a_real_tracking_server(project, mlflow_server):
    r = run_cli(["-m", "dlzoo.train", "experiment=digits_mlp", "trainer.max_epochs=1", f"logger.tracking_uri={mlflow_server}",
                 "output_dir=out/srv", *FAST], cwd=project, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    run_id = json.loads((project / "out/srv/run_info.json").read_text())["run_id"]
    got = requests.get(f"{mlflow_server}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=10).json()["run"]
    assert got["info"]["status"] == "FINISHED"
    metrics = {m["key"]: m["value"] for m in got["data"]["metrics"]}
    assert metrics["test/acc"] > 0.5
    arts = requests.get(f"{mlflow_server}/api/2.0/mlflow/artifacts/list", params={"run_id": run_id}, timeout=10).json()
    assert "config.yaml" in {f["path"] for f in arts["files"]}
    assert not (project / "mlflow.db").exists()  # nothing went to the local store


def test_unreachable_server_fails_before_training(project):
    port = free_port()  # nothing listens there
    t0 = time.time()
    r = run_cli(["-m", "dlzoo.train", "experiment=digits_mlp", f"logger.tracking_uri=http://127.0.0.1:{port}",
                 "output_dir=out/x"], cwd=project, timeout=120)
    assert r.returncode == 2
    assert "unreachable" in r.stderr and "make mlflow-server" in r.stderr
    assert not (project / "out/x/checkpoints").exists()
    assert time.time() - t0 < 60


def test_sigterm_marks_killed_and_resume_continues_the_same_run(project):
    out = project / "out" / "term"
    proc, last = train_until_checkpoint(project, out)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    client = _client(project)
    (killed,) = _all_runs(client)
    assert killed.info.status == "KILLED", output[-2000:]
    import torch

    done = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    resumed_at = time.time() * 1000
    r = run_cli(["-m", "dlzoo.train", *SMALL_CNN1D, f"trainer.max_epochs={done + 2}", "train.resume=last",
                 "train.log_model=false", f"output_dir={out}", *FAST], cwd=project, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    (resumed,) = _all_runs(client)  # the same MLflow run, not a new one
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(resumed.info.run_id, "epoch")]
    assert steps == sorted(steps)
    # The killed job may have validated one more epoch than its last checkpoint holds (SIGTERM can land between
    # the two); resuming repeats only that epoch. So: every epoch validated, and after the resume exactly the
    # epochs the checkpoint did not hold (not a restart from epoch 0).
    val = client.get_metric_history(resumed.info.run_id, "val/acc")
    assert len({m.step for m in val}) == done + 2
    assert len([m for m in val if m.timestamp >= resumed_at]) == 1


def test_nan_loss_stops_and_fails_the_run(project):
    from dlzoo.train import run

    with pytest.raises(FloatingPointError, match="train/loss is (nan|inf)"):
        run(compose(["experiment=digits_mlp", "optimizer=sgd", "optimizer.lr=1e30", "trainer.max_epochs=3",
                     "train.log_model=false", *FAST]), project / "out" / "nan", [])
    (r,) = _all_runs(_client(project))
    assert r.info.status == "FAILED" and "FloatingPointError" in r.data.tags["dlzoo.error"]
    assert not (project / "out/nan/checkpoints/on_exception.ckpt").exists()  # no NaN weights kept


def test_corrupt_and_incompatible_checkpoints_are_refused(project, tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"PK\x03\x04 not really a checkpoint")
    r = run_cli(["-m", "dlzoo.train", "experiment=digits_mlp", f"train.resume={bad}"], cwd=project)
    assert r.returncode == 2 and "corrupt" in r.stderr and str(bad) in r.stderr
    from dlzoo.train import run

    run(compose(["experiment=digits_mlp", "trainer.max_epochs=1", "train.log_model=false", "train.test=false", *FAST]),
        project / "out" / "mlp", [])
    r = run_cli(["-m", "dlzoo.train", "experiment=digits_mlp", "model=logreg",
                 f"train.resume={project / 'out/mlp/checkpoints/last.ckpt'}"], cwd=project)
    assert r.returncode == 2 and "does not fit this model" in r.stderr
