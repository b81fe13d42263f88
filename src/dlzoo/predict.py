"""Predict labels for new samples with a trained classifier: ``python -m dlzoo.predict MODEL INPUT...``.

MODEL is a registered model (``models:/digits-lenet5@best``, ``models:/digits-lenet5/latest``) or a training
run folder (``artifacts/runs/digits_lenet5``; its best checkpoint). Inputs are raw samples in the form the
dataset stores them (digits: 8x8 intensities 0..16; MNIST-1D: 40 values), preprocessed exactly as in
training (scaling, resizing, the training split's standardisation). A registered model carries that
preprocessing itself (dlzoo.tracking.model): it needs nothing but the MLflow store, no local splits.

- ``.npy``: one sample (the sample shape) or a stack of them (N, *sample shape);
- ``.csv``: one flattened sample per row (no header);
- ``.png`` / ``.jpg`` / ``.bmp``: one grey image, resized to the dataset's image size, 0..255 scaled to the
  dataset's raw range.

Writes CSV rows ``input,index,label,p_0..p_{C-1}`` (class probabilities) to ``--out`` or stdout.

    python -m dlzoo.predict models:/digits-lenet5@best samples.npy
    python -m dlzoo.predict artifacts/runs/digits_lenet5 my_digit.png --out predictions.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from dlzoo.errors import DataError, DlzooError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def read_inputs(path: Path, sample_shape: tuple[int, ...], raw_max: float, raw_dtype) -> np.ndarray:
    """One input file -> raw samples (N, *sample_shape) in the dtype and range the dataset's splits use."""
    if not path.exists():
        raise DataError(f"input file {path} not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            x = np.load(path, allow_pickle=False)
        elif suffix == ".csv":
            x = np.loadtxt(path, delimiter=",", ndmin=2)
        elif suffix in IMAGE_SUFFIXES:
            from PIL import Image

            if len(sample_shape) != 2:
                raise DataError(f"{path}: an image was given but the model takes samples of shape {sample_shape}")
            img = Image.open(path).convert("L").resize(sample_shape[::-1], Image.Resampling.BILINEAR)
            grey = np.asarray(img, dtype=np.float32)  # (H, W), 0..255
            x = (grey if raw_dtype == np.uint8 else grey / 255.0 * raw_max)[None]
        else:
            raise DataError(f"{path}: unsupported input type {suffix!r}; use .npy, .csv or an image "
                            f"({', '.join(IMAGE_SUFFIXES)})")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} could not be read ({exc})") from None
    size = int(np.prod(sample_shape))
    if x.shape == sample_shape:
        x = x[None]
    if x.ndim == 2 and x.shape[1] == size and len(sample_shape) > 1:  # flattened rows (CSV)
        x = x.reshape(len(x), *sample_shape)
    if tuple(x.shape[1:]) != sample_shape:
        raise DataError(f"{path}: samples of shape {tuple(x.shape[1:]) or x.shape} given; the model's dataset "
                        f"stores samples of shape {sample_shape} (one sample, or a stack (N, *shape))")
    return x.astype(raw_dtype, copy=False)


def _rows(path: Path, probs: np.ndarray) -> list[dict]:
    return [{"input": str(path), "index": i, "label": int(p.argmax()),
             **{f"p_{c}": round(float(v), 6) for c, v in enumerate(p)}} for i, p in enumerate(probs)]


def load_registered(uri: str):
    """(pyfunc model, its MLmodel metadata) of a registered classifier logged with its preprocessing
    (dlzoo.tracking.model); (None, metadata) for any other registered model."""
    import mlflow

    from dlzoo.tracking.mlflow_utils import tracking_uri
    from dlzoo.tracking.registry import resolve

    store = tracking_uri()
    mlflow.set_tracking_uri(store)
    resolve(mlflow.MlflowClient(store), uri)  # a missing name or version lists the registered models
    meta = mlflow.models.get_model_info(uri).metadata or {}
    if meta.get("dlzoo.task") != "classify" or "dlzoo.sample_shape" not in meta:
        return None, meta
    return mlflow.pyfunc.load_model(uri), meta


def predict(source: str, inputs: list[Path]) -> list[dict]:
    model, meta = load_registered(source) if source.startswith("models:/") else (None, {})
    if model is not None:  # raw samples in, probabilities out: the model does the preprocessing
        shape, raw_max = tuple(meta["dlzoo.sample_shape"]), float(meta["dlzoo.raw_max"])
        dtype = np.dtype(meta["dlzoo.raw_dtype"])
        return [row for path in inputs
                for row in _rows(path, np.asarray(model.predict(read_inputs(path, shape, raw_max, dtype)
                                                                .astype(np.float32))))]
    return _predict_local(source, inputs)


def _predict_local(source: str, inputs: list[Path]) -> list[dict]:
    """A training run folder (or a registered model logged without its preprocessing): the network and the
    datamodule's preprocessing, with the splits' statistics."""
    import torch

    from dlzoo.evaluate import load_task

    info, cfg, dm, task = load_task(source)
    if cfg.task != "classify":
        raise DlzooError(f"predict takes classifiers; {source} is a {cfg.task!r} model "
                         f"(use `python -m dlzoo.evaluate {source}` for its test metrics)")
    train_x = np.load(dm.splits_dir / dm.name / "x_train.npy", mmap_mode="r")  # the stored raw form
    sample_shape, raw_max = tuple(train_x.shape[1:]), float(np.max(train_x))
    rows = []
    for path in inputs:
        x = dm.prepare_inputs(read_inputs(path, sample_shape, raw_max, train_x.dtype))
        with torch.no_grad():
            rows += _rows(path, torch.softmax(task(x), dim=1).numpy())  # (N, C)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a training run folder, or models:/<dataset>-<model>@best (or /latest, /<version>)")
    ap.add_argument("inputs", nargs="+", type=Path, help=".npy, .csv or image files of raw samples")
    ap.add_argument("--out", type=Path, default=None, help="write the CSV here (default: stdout)")
    args = ap.parse_args(argv)
    from dlzoo.console import quiet

    quiet()
    try:
        rows = predict(args.model, args.inputs)
    except DlzooError as exc:
        sys.exit(f"error: {exc}")
    out = args.out.open("w", newline="") if args.out else sys.stdout
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    if args.out:
        out.close()
        print(f"{len(rows)} predictions -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
