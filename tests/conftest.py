"""Shared fixtures. Tests use the real Hydra, Lightning, MLflow (sqlite store in a temp dir) and DVC."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


# `make test` runs pytest-xdist with `--dist loadfile`: a file's tests run in one worker, so a module fixture
# that reproduces a whole (shrunk) pipeline (1-2 minutes) is built once, not once per worker. Files go to the
# workers in collection order, one at a time as they finish: the long end-to-end files of tests/pipeline/ come
# first, so that the short ones fill the gaps instead of one long file running alone at the end.
LONG_FIRST = ("pipeline", "claims", "compress")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        parts = Path(str(item.path)).relative_to(ROOT / "tests").parts
        return LONG_FIRST.index(parts[0]) if len(parts) > 1 and parts[0] in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=rank)  # stable: the order within each rank stays pytest's


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def splits_dir(tmp_path_factory) -> Path:
    """The `prepare` stage's splits, made once for the session from the real data/ (make data)."""
    from dlzoo.prepare import prepare

    if not (ROOT / "data" / "digits" / "x.npy").exists():
        pytest.fail("data/ is missing: run `make data` (make test does)")
    from userdata import write_user_datasets

    # the real embedded datasets plus small MNIST / Fashion-MNIST / CIFAR-10 files in their real formats
    data = tmp_path_factory.mktemp("data")
    for d in (ROOT / "data").iterdir():
        if d.is_dir():
            os.symlink(d, data / d.name)
    write_user_datasets(data)
    out = tmp_path_factory.mktemp("splits")
    prepare(data, out, seed=0, val_fraction=0.15, test_fraction=0.2)
    return out


@pytest.fixture
def project(tmp_path, splits_dir, monkeypatch) -> Path:
    """A throw-away project root: conf/ and the splits of the real one, its own MLflow store."""
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copytree(ROOT / "conf", proj / "conf")
    shutil.copy(ROOT / "dvc.yaml", proj / "dvc.yaml")
    (proj / "artifacts").mkdir()
    os.symlink(splits_dir, proj / "artifacts" / "splits")
    monkeypatch.chdir(proj)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DLZOO_ROOT", raising=False)
    return proj


def copy_project(dst: Path, rels: list[str]) -> None:
    """Copy these files and folders of the project (without caches) into ``dst``."""
    for rel in rels:
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, dst / rel, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.exists():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst / rel)


def compose(overrides: list[str] | None = None):
    from dlzoo.configure import compose as _compose

    return _compose(overrides)


FAST = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def tiny_sort_datamodule(folder: Path):
    """A set-up datamodule of the sort task written to ``folder/sort`` (60 training sequences of lengths 2-4, a
    ``long`` split up to 8), and its arrays."""
    import numpy as np

    from dlzoo.data.seq2seq import Seq2SeqDataModule
    from dlzoo.data.synthetic import make_seq2seq

    arrays = make_seq2seq(0, train_lengths=(2, 4), max_len=8, sizes={"train": 60, "val": 8, "test": 16}, per_length=4)
    (folder / "sort").mkdir()
    for k, v in arrays.items():
        np.save(folder / "sort" / f"{k}.npy", v)
    dm = Seq2SeqDataModule("sort", folder, batch_size=16)
    dm.setup()
    return dm, arrays


def run_cli(args: list[str], cwd: Path, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    e.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([PY, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=e)


# The pipeline's MNIST-1D CNN (BatchNorm, augmentation, dropout) at a quarter of its width, 8 batches an epoch:
# a job with real epochs and checkpoints that costs seconds.
SMALL_CNN1D = ["experiment=mnist1d_cnn1d", "model.channels=[8,16,32]", "trainer.limit_train_batches=8"]


def train_until_checkpoint(project: Path, out: Path) -> tuple[subprocess.Popen, Path]:
    """Start a long training job (``SMALL_CNN1D``, 500 epochs) in a subprocess and return once its first
    ``last.ckpt`` exists."""
    import time

    proc = subprocess.Popen([PY, "-m", "dlzoo.train", *SMALL_CNN1D, "trainer.max_epochs=500",
                             f"output_dir={out}", *FAST],
                            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert last.exists(), proc.stdout.read() if proc.poll() is not None else "no checkpoint in time"
    time.sleep(1.0)
    return proc, last


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow(command: str, store_args: list[str], timeout_s: float = 180) -> tuple[subprocess.Popen, str]:
    """Start a real ``mlflow server`` / ``mlflow ui`` on a free loopback port and wait for its /health."""
    port = free_port()
    proc = subprocess.Popen([PY, "-m", "mlflow", command, "--host", "127.0.0.1", "--port", str(port), *store_args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    url = f"http://127.0.0.1:{port}"
    if not wait_for_url(proc, f"{url}/health", timeout_s):
        proc.kill()
        pytest.fail(f"mlflow {command} did not answer on {url}/health within {timeout_s:.0f} s")
    return proc, url


def wait_for_url(proc: subprocess.Popen, url: str, timeout_s: float = 180) -> bool:
    """Poll ``url`` until it answers 200 (True), or until ``proc`` exits or ``timeout_s`` passes (False)."""
    import time

    import requests

    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return True
        except requests.RequestException:
            time.sleep(0.5)
    return False


def nms_brute_force(boxes: list[list[float]], scores: list[float], thr: float) -> list[int]:
    """Greedy NMS written the slow, obvious way: the reference the detectors' NMS is checked against."""
    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    left, keep = list(range(len(boxes))), []
    while left:
        best = max(left, key=lambda i: scores[i])
        keep.append(best)
        left = [i for i in left if i != best and iou(boxes[i], boxes[best]) <= thr]
    return keep
