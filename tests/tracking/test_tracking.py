"""What a training run records in MLflow, seen through MLflow's own client and server: the experiment's kind
(Model-training view), the dataset inputs, the job's params, system metrics, and a registered classifier that
serves raw samples with `mlflow models serve`."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import FAST, PY, free_port, run_cli, wait_for_url

TINY = [*FAST, "trainer.max_epochs=1", "trainer.limit_train_batches=3"]


def train(project: Path, *overrides: str, experiment: str = "digits_mlp") -> tuple[dict, str]:
    import json

    out = project / "runs" / str(len(list((project / "runs").glob("*"))) if (project / "runs").exists() else 0)
    r = run_cli(["-m", "dlzoo.train", f"experiment={experiment}", f"output_dir={out}", *TINY, *overrides], project)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((out / "run_info.json").read_text()), r.stdout


def client(project: Path):
    import mlflow

    return mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


def test_run_records_model_training_kind_datasets_and_job_params(project, tmp_path):
    from dlzoo.tracking import mlflow_utils as mu

    started = time.time()
    info, stdout = train(project)
    took = time.time() - started
    c = client(project)
    run = c.get_run(info["run_id"])
    # the time from the shell to the first training step: within the command's wall time, past its imports
    assert 0.5 < info["startup_s"] < took and run.data.metrics["time/startup_s"] == pytest.approx(info["startup_s"])
    exp = c.get_experiment(run.info.experiment_id)
    assert exp.tags[mu.EXPERIMENT_KIND_TAG] == mu.MODEL_TRAINING_KIND == "custom_model_development"
    # the printed URL opens the experiment on MLflow's Model-training view
    url = f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}?workflowType=machine_learning"
    assert f"MLflow UI: {url}" in stdout
    assert mu.experiment_links(f"sqlite:///{project / 'mlflow.db'}") == [f"{exp.name}: {url}"]
    # params: the job's config (with its Hydra overrides as a note), none of the pipeline's lists
    params = run.data.params
    assert params["optimizer.lr"] and params["model.name"] == "mlp" and params["trainer.max_epochs"] == "1"
    assert not [k for k in params if k.startswith("pipeline.")]
    assert "trainer.max_epochs=1" in run.data.tags["mlflow.note.content"]
    # the three splits as dataset inputs: name, context, digest of the split files, profile (sizes)
    contexts = {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset
                for i in run.inputs.dataset_inputs}
    assert len(run.inputs.dataset_inputs) == 3 and set(contexts) == {"train", "val", "test"}
    splits = project / "artifacts" / "splits" / "digits"
    for split, ds in contexts.items():
        assert ds.name == "digits" and ds.source_type == "local"
        assert str(splits.resolve()) in ds.source
        n = len(np.load(splits / f"x_{split}.npy", mmap_mode="r"))
        assert f'"features_shape": [{n}, 8, 8]' in ds.profile
    assert len({ds.digest for ds in contexts.values()}) == 3
    assert not [k for k in run.data.metrics if k.startswith("system/")]  # system metrics are off by default

    # another training split (one sample fewer): the train digest changes, val and test stay (the digests the
    # run logged, recomputed by the function that made them)
    from dlzoo.tracking.datasets import split_dataset

    version = run.data.tags["data.dvc.md5"]
    moved = tmp_path / "splits"
    shutil.copytree(splits.resolve(), moved)
    x, y = np.load(moved / "x_train.npy"), np.load(moved / "y_train.npy")
    np.save(moved / "x_train.npy", x[1:])
    np.save(moved / "y_train.npy", y[1:])
    after = {split: split_dataset(moved, "digits", split, None if version == "unknown" else version).digest
             for split in ("train", "val", "test")}
    assert after["train"] != contexts["train"].digest
    assert after["val"] == contexts["val"].digest and after["test"] == contexts["test"].digest


@pytest.mark.slow  # long (subprocesses, services): `make test-slow` runs it
def test_system_metrics_switch_on_from_config(project):
    info, _ = train(project, "logger.system_metrics=true", "logger.system_metrics_interval_s=0.5",
                    "trainer.max_epochs=3", "trainer.limit_train_batches=null")
    metrics = client(project).get_run(info["run_id"]).data.metrics
    assert "system/cpu_utilization_percentage" in metrics and "system/system_memory_usage_megabytes" in metrics
    r = run_cli(["-m", "dlzoo.train", "logger.system_metrics=maybe", *TINY], project)
    assert r.returncode != 0 and "logger.system_metrics" in r.stderr and "true or false" in r.stderr


def test_raw_input_classifier_matches_the_datamodule_preprocessing(project):
    """The logged model's preprocessing (scale, resize to the network's size, standardise) gives the same
    probabilities as the datamodule's own, for a network that resizes digits (LeNet-5: 32x32)."""
    import torch

    from conftest import compose
    from dlzoo import builders
    from dlzoo.tracking.model import raw_input_classifier

    cfg = compose(["model=lenet5"])
    dm = builders.build_datamodule(cfg)
    dm.setup()
    net = builders.build_network(cfg, dm.input_shape, dm.num_classes).eval()
    wrapper, example, meta = raw_input_classifier(net, dm)
    raw = np.load(dm.splits_dir / "digits" / "x_test.npy")[:16]
    assert dm.input_shape[-1] != raw.shape[-1]  # the network does not take 8x8
    with torch.no_grad():
        expected = torch.softmax(net(dm.prepare_inputs(raw)), dim=1)
        got = wrapper(torch.from_numpy(raw.astype(np.float32)))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert example.shape == (2, 8, 8) and example.dtype == np.float32
    assert meta["dlzoo.sample_shape"] == [8, 8] and meta["dlzoo.raw_max"] == 16.0


def test_raw_input_regressor_matches_the_task_in_target_units(project):
    """A regressor's logged model standardises raw features per feature and returns target units, as the
    datamodule and RegressionTask.forward do."""
    import torch

    from conftest import compose
    from dlzoo import builders

    cfg = compose(["experiment=diabetes_mlp"])
    dm = builders.build_datamodule(cfg)
    dm.setup()
    net = builders.build_network(cfg, dm.input_shape, dm.num_classes).eval()
    task = builders.build_task(cfg, net, dm.num_classes).eval()
    task.restore_from_registry(dm)
    wrapper, example, meta = task.raw_input_model(dm)  # what the run logs as its MLflow Model
    raw = np.load(dm.splits_dir / "diabetes" / "x_test.npy")[:16]  # features in their own units
    with torch.no_grad():
        expected = task(dm.datasets["test"].tensors[0][:16])
        got = wrapper(torch.from_numpy(raw.astype(np.float32)))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    assert float(raw.max()) > 10 and meta["dlzoo.task"] == "regress" and meta["dlzoo.sample_shape"] == [10]
    assert set(wrapper.state_dict()) == {f"net.{k}" for k in net.state_dict()}


def serve(model_uri: str, project: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}
    proc = subprocess.Popen([PY, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    if wait_for_url(proc, f"{url}/ping"):
        return proc, url
    proc.kill()
    pytest.fail(f"mlflow models serve did not answer on {url}/ping: {proc.stderr.read()[-3000:]}")


@pytest.mark.slow  # long (subprocesses, services): `make test-slow` runs it
def test_registered_model_serves_raw_samples_like_predict(project, tmp_path):
    import csv

    import requests

    info, _ = train(project, "trainer.max_epochs=2", "trainer.limit_train_batches=null",
                    f"train.metrics={tmp_path / 'metrics.json'}")
    raw = np.load(project / "artifacts/splits/digits/x_test.npy")[:20]  # 8x8, intensities 0..16
    np.save(tmp_path / "samples.npy", raw)
    (project / "artifacts" / "splits").unlink()  # predict and serve need nothing but the model URI
    r = run_cli(["-m", "dlzoo.predict", "models:/digits-mlp@best", str(tmp_path / "samples.npy"),
                 "--out", str(tmp_path / "pred.csv")], project)
    assert r.returncode == 0, r.stderr[-3000:]
    predicted = [int(row["label"]) for row in csv.DictReader((tmp_path / "pred.csv").open())]
    assert len(predicted) == 20 and len(set(predicted)) > 1

    proc, url = serve("models:/digits-mlp@best", project)
    try:
        answer = requests.post(f"{url}/invocations", json={"inputs": raw.tolist()}, timeout=60)
        assert answer.status_code == 200, answer.text
        probs = np.asarray(answer.json()["predictions"])  # (N, 10) class probabilities
        assert probs.shape == (20, 10) and np.allclose(probs.sum(1), 1, atol=1e-4)
        assert probs.argmax(1).tolist() == predicted
        flat = requests.post(f"{url}/invocations", json={"inputs": raw.reshape(20, 64).tolist()}, timeout=60)
        assert flat.status_code == 400 and "(-1, 8, 8)" in flat.json()["message"]
        text = requests.post(f"{url}/invocations", json={"inputs": [[["a"] * 8] * 8]}, timeout=60)
        assert text.status_code == 400 and "could not convert string to float" in text.json()["message"]
        assert "Traceback" not in flat.text + text.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    r = run_cli(["-m", "dlzoo.predict", "models:/digits-nope@best", str(tmp_path / "samples.npy")], project)
    assert r.returncode != 0 and "digits-mlp" in r.stderr  # lists the registered models


@pytest.mark.slow  # long (subprocesses, services): `make test-slow` runs it
def test_registered_regressor_predicts_in_target_units(project, tmp_path):
    """A registered regressor takes raw features and answers in the target's units, and `dlzoo.evaluate` of
    its models:/ URI gives the figures of the run's own evaluation."""
    import csv
    import json

    import mlflow

    metrics_file = tmp_path / "metrics.json"
    train(project, "trainer.max_epochs=3", "trainer.limit_train_batches=null",
          f"train.metrics={metrics_file}", f"train.eval_dir={tmp_path / 'eval'}", experiment="diabetes_mlp")
    first = json.loads(metrics_file.read_text())
    r = run_cli(["-m", "dlzoo.evaluate", "models:/diabetes-mlp@best", "--no-register"], project)
    assert r.returncode == 0, r.stderr[-3000:]
    again = json.loads(r.stdout[r.stdout.index("{"):])
    assert again["test/r2"] == pytest.approx(first["test/r2"], abs=1e-5)
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/diabetes-mlp@best")
    raw = np.load(project / "artifacts/splits/diabetes/x_test.npy")[:10].astype(np.float32)
    expected = [float(row["predicted"]) for row in csv.DictReader((tmp_path / "eval/predictions.csv").open())][:10]
    assert np.asarray(model.predict(raw)).ravel() == pytest.approx(expected, rel=1e-4)


def test_a_dataset_row_inserted_by_another_run_at_the_same_moment_is_retried_not_fatal(tmp_path):
    """Two runs started together log the same dataset: MLflow finds the row missing in both, both insert it,
    and the second insert fails on the unique constraint. The loser logs again (then MLflow finds the row); an
    unrelated error is raised at once."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from dlzoo.tracking.races import retry_race

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("e"))
    dataset = mlflow.data.from_numpy(np.zeros((4, 2), np.float32), name="d", digest="abc")
    attempts = []

    def log_input():  # the first attempt loses the race, as the run beside it inserted the row first
        attempts.append(1)
        if len(attempts) == 1:
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, "
                                  "datasets.name, datasets.digest")
        client.log_inputs(run.info.run_id, [mlflow.entities.DatasetInput(dataset._to_mlflow_entity())])

    retry_race(log_input, budget_s=30)
    assert len(attempts) == 2
    assert [d.dataset.name for d in client.get_run(run.info.run_id).inputs.dataset_inputs] == ["d"]
    started = time.monotonic()
    with pytest.raises(MlflowException, match="no such run"):
        retry_race(lambda: (_ for _ in ()).throw(MlflowException("no such run")), budget_s=30)
    assert time.monotonic() - started < 5


def test_a_run_ends_with_the_status_of_how_its_block_ended():
    """The one context manager that closes training runs and the parent runs of searches, comparisons and
    claims: FINISHED, FAILED on an error, KILLED on Ctrl-C / SIGTERM (Lightning's SystemExit); the error
    goes on up once the run is closed."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from dlzoo.tracking.mlflow_utils import ending

    for raised, expected in [(None, "FINISHED"), (ValueError("bad"), "FAILED"), (KeyboardInterrupt(), "KILLED"),
                             (SystemExit(1), "KILLED"), (SIGTERMException(), "KILLED")]:
        closed = []
        try:
            with ending(lambda status, error: closed.append((status, error))):
                if raised is not None:
                    raise raised
        except BaseException as exc:  # noqa: BLE001
            assert exc is raised
        else:
            assert raised is None
        assert closed == [(expected, raised)]
