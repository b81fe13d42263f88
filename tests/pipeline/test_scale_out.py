"""Scale-out as a cluster starts jobs: torchrun on two "nodes" of one process each (rendezvous on
127.0.0.1), on a fresh MLflow store: rank 0 alone opens the store and records the run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import mlflow
import pytest
from conftest import FAST, PY, free_port


def test_torchrun_two_nodes_one_run_each_test_sample_once(project):
    port = free_port()
    train = ["-m", "dlzoo.train", "experiment=digits_mlp", "trainer=ddp_cpu", "trainer.devices=1",
             "trainer.num_nodes=2", "trainer.max_epochs=1", "trainer.limit_train_batches=3",
             "train.log_model=false", "output_dir=out", *FAST]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    assert not (project / "mlflow.db").exists()
    nodes = [subprocess.Popen([PY, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={rank}",
                               "--nproc-per-node=1", "--master-addr=127.0.0.1", f"--master-port={port}", *train],
                              cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]
    outputs = [node.communicate(timeout=400)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.status for r in runs] == ["FINISHED"]
    run = runs[0]
    assert run.data.params["trainer.num_nodes"] == "2"
    assert run.data.params["data.global_batch_size"] == "128"  # 64 per process x 2 nodes
    assert run.data.metrics["test/num_samples"] == 360  # the digits test split, each sample on one rank


@pytest.mark.slow  # long (subprocesses, services): `make test-slow` runs it
def test_gpu_check_dry_run_trains_checks_ddp_and_measures_throughput(project, tmp_path):
    import json

    from conftest import ROOT, run_cli

    out = tmp_path / "gpu_check.json"
    r = run_cli([str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--experiments", "digits_mlp,seq2seq_lstm",
                 "--models", "lenet5", "--out", str(out)], project, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["dry_run"] and record["trainer"]["one"][:2] == ["trainer=cpu", "trainer.precision=bf16-mixed"]
    assert {n: e["status"] for n, e in record["experiments"].items()} == {"digits_mlp": "FINISHED",
                                                                          "seq2seq_lstm": "FINISHED"}
    assert 0 <= record["experiments"]["digits_mlp"]["test/acc"] <= 1
    assert record["ddp"]["statuses"] == ["FINISHED"] and record["ddp"]["test/num_samples"] == 360
    assert record["ddp"]["ok"] and record["ddp"]["world_size_batch"] == "128"
    lenet = record["throughput"]["lenet5"]
    assert lenet["precision"] == "bf16-mixed" and lenet["raw_samples_per_s"] > 0 and lenet["dlzoo_samples_per_s"] > 0
    assert lenet["ratio"] == round(lenet["dlzoo_samples_per_s"] / lenet["raw_samples_per_s"], 3)
    assert "3/3" not in r.stdout and "2/2 experiments FINISHED; DDP ok" in r.stdout


def test_gpu_check_without_a_gpu_says_so_and_names_the_dry_run(project, tmp_path):
    import torch
    from conftest import ROOT, run_cli

    if torch.cuda.is_available():
        return
    r = run_cli([str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path / "x.json")], project)
    assert r.returncode == 2 and "no CUDA GPU" in r.stderr and "--dry-run" in r.stderr
    assert not (tmp_path / "x.json").exists()


SHARED_SEARCH = """# @package _global_
hparams_search:
  n_trials: 6
  seed: 0
  storage: null
  study_name: null
  params:
    optimizer.lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
trainer: {max_epochs: 2, enable_progress_bar: false, enable_model_summary: false}
train: {log_model: false, test: false}
"""


@pytest.mark.slow  # long (subprocesses, services): `make test-slow` runs it
def test_optuna_search_shared_by_two_workers_one_parent_and_a_killed_worker_loses_nothing(project):
    import re
    import signal
    import time

    import optuna

    (project / "conf" / "hparams_search" / "shared.yaml").write_text(SHARED_SEARCH)
    storage = f"sqlite:///{project / 'optuna.db'}"
    cmd = [PY, "-m", "dlzoo.train", "experiment=diabetes_mlp", "hparams_search=shared",
           f"hparams_search.storage={storage}", "hparams_search.study_name=shared"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    def start(i: int) -> subprocess.Popen:
        return subprocess.Popen([*cmd, f"hydra.run.dir=outputs/w{i}"], cwd=project, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    # The second worker starts first, so that it surely finishes a trial before the first worker could have
    # taken the whole study (a trial here takes about a second; a worker's start-up several). The first worker
    # joins once the second has finished a trial; the second is killed at its next trial's end (or its exit):
    # both run in the one study for a while, and the kill lands mid-search.
    workers: dict[int, subprocess.Popen] = {1: start(1)}
    done_by_killed: list[int] = []  # trials the second worker finished before it was killed
    seen: list[str] = []
    deadline = time.time() + 300
    for line in workers[1].stdout:
        seen.append(line)
        m = re.match(r"trial (\d+): val/loss=", line)
        if m:
            done_by_killed.append(int(m.group(1)))
            if 0 not in workers:
                workers[0] = start(0)
            else:
                break
        assert time.time() < deadline, "the second worker finished no trial in time"
    workers[1].send_signal(signal.SIGKILL)  # mid-search, in the middle of its next trial at the latest
    assert done_by_killed and 0 in workers, "".join(seen)[-3000:]
    workers[1].wait(timeout=60)
    out = workers[0].communicate(timeout=600)[0]
    assert workers[0].returncode == 0, out[-3000:]
    study = optuna.load_study(study_name="shared", storage=storage)
    complete = {t.number: t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert set(done_by_killed) <= set(complete)  # the killed worker's finished trials are kept
    assert len(study.trials) == 6 and len(complete) >= 4
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parents = [r for r in runs if r.data.tags.get("dlzoo.search") == "optuna"]
    assert len(parents) == 1 and parents[0].info.run_id == study.user_attrs["mlflow_parent_run_id"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == len(runs) - 1  # every trial run, whichever worker ran it, is a child of the one parent
    finished = {int(r.data.tags["dlzoo.trial"]) for r in children if r.info.status == "FINISHED"}
    assert finished == set(complete)
    assert parents[0].data.metrics["best/val/loss"] == min(t.value for t in complete.values())


RACE = """
import sys, time
from dlzoo.search import _study
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # every process opens the fresh database at once
study = _study({"storage": sys.argv[1], "study_name": "s"}, "minimize", 0)
print(study.study_name)
"""


def test_workers_opening_a_fresh_optuna_database_at_once_all_get_the_study(tmp_path):
    """Optuna creates its tables on first use; several workers started together race to do it, and the
    losers must wait for the winner's schema instead of failing with "table ... already exists"."""
    import time

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    start = time.time() + 6  # after every interpreter has imported optuna
    procs = [subprocess.Popen([PY, "-c", RACE, storage, str(start)], text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env={**os.environ, "PYTHONWARNINGS": "ignore"})
             for _ in range(4)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(o[-2000:] for o in outs)
    assert all(o.strip().splitlines()[-1] == "s" for o in outs)
    import optuna

    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["s"]


def test_a_bad_database_url_fails_at_once_not_after_the_race_budget(tmp_path):
    """Only the schema race is waited out: a storage URL in a folder that does not exist is refused at once."""
    import time

    from dlzoo.search import _study

    started = time.monotonic()
    with pytest.raises(Exception, match="unable to open database file"):
        _study({"storage": f"sqlite:///{tmp_path / 'missing' / 'optuna.db'}", "study_name": "s"}, "minimize", 0)
    assert time.monotonic() - started < 30  # the race's budget is 180 s


def _postgres_bin() -> "Path | None":
    import glob
    import shutil
    from pathlib import Path

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
    return Path(found[-1]).parent if found[-1] else None


@pytest.fixture
def postgres():
    """A throw-away PostgreSQL server on 127.0.0.1 (Debian's postgresql: initdb + pg_ctl, trust auth, a temp
    data folder), as the ``postgres`` user when the tests run as root (PostgreSQL refuses root)."""
    import shutil
    import tempfile
    from pathlib import Path

    from conftest import free_port

    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL: install Debian's postgresql (make test does, as root)")
    pytest.importorskip("psycopg", reason="psycopg, SQLAlchemy's PostgreSQL driver (pip install -e '.[postgres]')")
    base = Path(tempfile.mkdtemp(prefix="dlzoo-pg-", dir="/tmp"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data, log = base / "data", base / "server.log"

    def pg(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, text=True)

    pg(str(bindir / "initdb"), "-D", str(data), "-U", "dlzoo", "--auth=trust", "-E", "UTF8")
    pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o", f"-h 127.0.0.1 -p {port} -k {base}", "start")
    try:
        yield f"postgresql://dlzoo@127.0.0.1:{port}/postgres"
    finally:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow  # long (subprocesses, services): `make test-slow` runs it
def test_two_trainings_write_to_a_postgresql_backed_mlflow_server_at_once(project, postgres):
    from conftest import ROOT, start_mlflow

    make = subprocess.run(["make", "-n", "-C", str(ROOT), "mlflow-server", f"MLFLOW_BACKEND={postgres}"],
                          capture_output=True, text=True)
    assert f"mlflow server --backend-store-uri {postgres} " in make.stdout  # what `make mlflow-server` starts
    server, url = start_mlflow("server", ["--backend-store-uri", postgres,
                                          "--artifacts-destination", str(project / "mlartifacts-server")])
    try:
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
        env.pop("MLFLOW_TRACKING_URI", None)
        jobs = [subprocess.Popen([PY, "-m", "dlzoo.train", f"experiment={exp}", "trainer.max_epochs=3",
                                  f"logger.tracking_uri={url}", "logger.flush_every_s=0", f"output_dir=out_{exp}",
                                  f"hydra.run.dir=out_{exp}/hydra", *FAST],
                                 cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for exp in ("digits_mlp", "mnist1d_mlp")]
        outputs = [job.communicate(timeout=600)[0] for job in jobs]
        assert [job.returncode for job in jobs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
        client = mlflow.MlflowClient(url)
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert sorted(r.data.tags["dlzoo.name"] for r in runs) == ["digits_mlp", "mnist1d_mlp"]
        for run in runs:
            assert run.info.status == "FINISHED"
            history = client.get_metric_history(run.info.run_id, "val/acc")
            assert sorted(m.step for m in history) == sorted({m.step for m in history}) and len(history) == 3
            assert "test/acc" in run.data.metrics and run.data.params["trainer.max_epochs"] == "3"
            assert "config.yaml" in {a.path for a in client.list_artifacts(run.info.run_id)}
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_jobs_started_together_on_a_fresh_store_both_record_their_run(project):
    """Two `dlzoo.train` started at the same moment on a store that does not exist yet (two terminals, a
    `--jobs 2` benchmark): MLflow builds a fresh sqlite store by migrating its schema, and two processes
    migrating at once leave it half-migrated for every later job. Both jobs must finish and both runs be in
    the store, which later jobs can still open."""
    db = project / "fresh" / "mlflow.db"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
    cmd = [PY, "-m", "dlzoo.train", "experiment=diabetes_mlp", "trainer.max_epochs=1", "train.log_model=false",
           "train.test=false", *FAST]
    jobs = [subprocess.Popen([*cmd, f"hydra.run.dir=outputs/j{i}"], cwd=project, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in range(2)]
    outs = [j.communicate(timeout=400)[0] for j in jobs]
    assert [j.returncode for j in jobs] == [0, 0], "\n".join(o[-2000:] for o in outs)
    client = mlflow.MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]
    assert len({r.info.experiment_id for r in runs}) == 1  # one experiment, not one per racing creator


ASKERS = """
import sys, time
from dlzoo.search import _ask, _study
study = _study({"storage": sys.argv[1], "study_name": "s"}, "minimize", 0)
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # every worker asks at once
while (trial := _ask(study, 12, sys.argv[1])) is not None:
    study.tell(trial, 0.0)
"""


def test_workers_sharing_a_study_stop_at_n_trials_not_one_more_each(tmp_path):
    """Four workers asking trials of one sqlite study as fast as they can: the study ends with exactly
    n_trials, none asked past it by a worker that counted just before another asked."""
    import time

    import optuna

    from dlzoo.search import _study

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    _study({"storage": storage, "study_name": "s"}, "minimize", 0)  # the schema race is another test's
    start = time.time() + 8
    procs = [subprocess.Popen([PY, "-c", ASKERS, storage, str(start)], text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env={**os.environ, "PYTHONWARNINGS": "ignore"})
             for _ in range(4)]
    outs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(o[-2000:] for o in outs)
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 12
