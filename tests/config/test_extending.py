"""Adding a model, a dataset or a task is one file (plus one YAML): done here in a throw-away copy of the project
(its own src/, conf/ and MLflow store), trained with fast_dev_run, and found in MLflow by name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT

MODEL_FILE = '''
import math

from torch import nn

from dlzoo.models.registry import register_model


@register_model()
def tinynet(input_shape, num_classes, hidden: int = 16):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))
'''

DATASET_FILE = '''
import numpy as np

from dlzoo.data.registry import register_dataset


@register_dataset(num_classes=3)
def blobs3(seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=600)
    x = rng.normal(size=(600, 4)).astype(np.float32) + 3.0 * y[:, None]
    return {"x": x, "y": y}
'''

TASK_FILE = '''
from torch import nn

from dlzoo.tasks.classify import ClassificationTask
from dlzoo.tasks.registry import register_task


@register_task("hinge")
class HingeTask(ClassificationTask):
    """A multi-class SVM: a classifier trained on the hinge loss, margin from the config."""

    @classmethod
    def from_config(cls, cfg, net, num_classes, context):
        from dlzoo.tasks.options import training_kwargs

        margin = cfg.get("hinge", {}).get("margin", 1.0)
        print("hinge margin", margin)
        return cls(net, num_classes=num_classes, loss_fn=nn.MultiMarginLoss(margin=margin), **training_kwargs(cfg))
'''


def copy_project(dest: Path) -> Path:
    """src/, conf/, dvc.yaml and params.yaml of this checkout: a project whose code can be edited."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for d in ("src", "conf"):
        shutil.copytree(ROOT / d, dest / d, ignore=ignore)
    for f in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / f, dest / f)
    return dest


def run_in(proj: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(proj / "src"), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("DLZOO_ROOT", None)
    res = subprocess.run([sys.executable, *args], cwd=proj, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def runs_with(proj: Path, tag: str, value: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{proj / 'mlflow.db'}")
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, filter_string=f"tags.`{tag}` = '{value}'")


FAST = ["trainer.fast_dev_run=true", "trainer.enable_progress_bar=false", "train.log_model=false"]


def test_new_model_is_one_file_and_one_yaml(tmp_path, splits_dir):
    proj = copy_project(tmp_path / "proj")
    (proj / "artifacts").mkdir()
    os.symlink(splits_dir, proj / "artifacts" / "splits")
    (proj / "src/dlzoo/models/tinynet.py").write_text(textwrap.dedent(MODEL_FILE))
    (proj / "conf/model/tinynet.yaml").write_text("name: tinynet\nhidden: 8\n")

    # (docs/extending.md's walk-through, run by tests/pipeline/test_docs.py, also lists it with list_models)
    run_in(proj, "-m", "dlzoo.train", "model=tinynet", "data=digits", *FAST)
    (run,) = runs_with(proj, "dlzoo.model", "tinynet")
    assert run.info.status == "FINISHED"
    assert run.data.params["model.hidden"] == "8"
    # 64 inputs -> 8 -> 10 outputs: the builder got the YAML's option and the dataset's shape
    assert run.data.metrics["model/num_params"] == 64 * 8 + 8 + 8 * 10 + 10
    # the source tree of the real project was not touched
    assert not (ROOT / "src/dlzoo/models/tinynet.py").exists()


def test_new_dataset_is_one_file_and_one_yaml(tmp_path):
    proj = copy_project(tmp_path / "proj")
    (proj / "src/dlzoo/data/sources/blobs3.py").write_text(textwrap.dedent(DATASET_FILE))
    (proj / "conf/data/blobs3.yaml").write_text("name: blobs3\nkind: tabular\nimage_size: null\nstandardize: true\n"
                                                "batch_size: 32\nnum_workers: 0\n")

    run_in(proj, "-m", "dlzoo.prepare", "--datasets", "blobs3")
    splits = proj / "artifacts/splits/blobs3"
    sizes = {s: len(__import__("numpy").load(splits / f"y_{s}.npy")) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == 600 and sizes["test"] == 120  # prepare.test_fraction 0.2 of 600
    run_in(proj, "-m", "dlzoo.train", "data=blobs3", "model=mlp", "model.hidden=[16]", *FAST)
    (run,) = runs_with(proj, "dlzoo.dataset", "blobs3")
    assert run.info.status == "FINISHED"
    # 4 features -> 16 -> 3 classes (num_classes from the registration)
    assert run.data.metrics["model/num_params"] == 4 * 16 + 16 + 16 * 3 + 3


def test_new_task_is_one_file(tmp_path, splits_dir):
    proj = copy_project(tmp_path / "proj")
    (proj / "artifacts").mkdir()
    os.symlink(splits_dir, proj / "artifacts" / "splits")
    (proj / "src/dlzoo/tasks/hinge.py").write_text(textwrap.dedent(TASK_FILE))

    trained = run_in(proj, "-m", "dlzoo.train", "task=hinge", "+hinge.margin=0.5", "model=mlp", "data=digits", *FAST)
    assert "hinge margin 0.5" in trained.stdout  # built by its own from_config, with its config section
    (run,) = runs_with(proj, "dlzoo.task", "hinge")
    assert run.info.status == "FINISHED"
    assert not (ROOT / "src/dlzoo/tasks/hinge.py").exists()


def test_unknown_dataset_lists_the_registered_ones(tmp_path):
    from dlzoo.errors import ConfigError
    from dlzoo.prepare import prepare

    with pytest.raises(ConfigError, match=r"unknown dataset\(s\) \['nope'\].*digits"):
        prepare(tmp_path, tmp_path / "out", seed=0, val_fraction=0.15, test_fraction=0.2, datasets=["nope"])


def test_loader_returning_wrong_keys_is_named(tmp_path):
    from dlzoo.data.registry import DatasetSource
    from dlzoo.errors import DataError

    bad = DatasetSource("bad", lambda seed: {"features": [1]}, num_classes=2)
    with pytest.raises(DataError, match=r"dataset 'bad'.*returned \['features'\].*\['x', 'y'\]"):
        bad.arrays(seed=0, data_dir=tmp_path)
