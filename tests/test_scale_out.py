"""Scale-out as a cluster starts jobs: torchrun on two "nodes" of one process each (rendezvous on
127.0.0.1), on a fresh MLflow store: rank 0 alone opens the store and records the run."""

from __future__ import annotations

import os
import subprocess

import mlflow
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
