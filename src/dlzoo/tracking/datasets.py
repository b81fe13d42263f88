"""The data a run trained on, recorded with MLflow's dataset API (``mlflow.log_input``).

Each split the run read (``artifacts/splits/<dataset>/*_{train,val,test}.npy``) becomes one dataset input with
the context ``train``, ``val`` or ``test``: named after the dataset, its source the split folder, its profile
the arrays' shapes and sizes, and its digest an md5 of the split's files and of the data version in
``data.dvc``. Another split seed, another data version or edited files give another digest; the MLflow UI
shows name, digest and context in the runs table's Dataset column and can filter runs by them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SPLITS = ("train", "val", "test")
TARGET_ARRAYS = ("y",)  # the arrays that are labels/targets; every other array of a split is a feature


def split_files(folder: Path, split: str) -> list[Path]:
    """The arrays of one split, e.g. ``x_train.npy`` and ``y_train.npy`` (``src_/tgt_``, ``boxes_`` ...)."""
    return sorted(p for p in folder.glob(f"*_{split}.npy") if p.is_file())


def split_digest(files: list[Path], data_version: str | None) -> str:
    """md5 (first 16 hex digits) of the split's file names and bytes and of ``data.dvc``'s md5."""
    h = hashlib.md5((data_version or "").encode())
    for f in files:
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def split_dataset(folder: Path, name: str, split: str, data_version: str | None):
    """One split as an ``mlflow.data`` NumPy dataset, or None when the folder holds no files of it."""
    import mlflow.data
    import numpy as np

    files = split_files(folder, split)
    if not files:
        return None
    arrays = {f.stem[: -len(split) - 1]: np.load(f, mmap_mode="r", allow_pickle=False) for f in files}
    targets = next((arrays.pop(k) for k in TARGET_ARRAYS if k in arrays and len(arrays) > 1), None)
    features = arrays["x"] if set(arrays) == {"x"} else arrays
    return mlflow.data.from_numpy(features, source=str(folder.resolve()), targets=targets, name=name,
                                  digest=split_digest(files, data_version))


def log_split_inputs(folder: Path, name: str, data_version: str | None) -> list:
    """Log the train / val / test splits in ``folder`` as inputs of the active MLflow run."""
    import mlflow

    from dlzoo.tracking.races import retry_race

    logged = []
    for split in SPLITS:
        dataset = split_dataset(folder, name, split, data_version)
        if dataset is not None:
            tags = {"data.dvc.md5": data_version} if data_version else None
            # runs started together on a fresh experiment may insert the same dataset row at once
            retry_race(lambda: mlflow.log_input(dataset, context=split, tags=tags), budget_s=60)
            logged.append(dataset)
    return logged
