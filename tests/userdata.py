"""Small files in the real formats of the user datasets (IDX for MNIST / Fashion-MNIST, CIFAR-10 python
batches), written by the tests: the parsers never see anything but the true layouts."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}


def idx_bytes(arr: np.ndarray) -> bytes:
    """An array in IDX: 0x0000, dtype code, ndim, big-endian uint32 sizes, big-endian data."""
    header = bytes([0, 0, IDX_CODES[arr.dtype], arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray) -> Path:
    data = idx_bytes(arr)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


def write_cifar_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """A CIFAR-10 python batch: a pickled dict with bytes keys, data (N, 3072) uint8, labels a list."""
    path.parent.mkdir(parents=True, exist_ok=True)
    d = {b"batch_label": b"testing batch", b"labels": [int(v) for v in labels],
         b"data": images.reshape(len(images), -1).astype(np.uint8), b"filenames": [b"x.png"] * len(labels)}
    path.write_bytes(pickle.dumps(d, protocol=2))
    return path


def fake_images(n: int, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8), y


def write_user_datasets(data_dir: Path, n_train: int = 100, n_test: int = 30) -> None:
    """data/mnist, data/fashion_mnist (IDX, gzip for one of them) and data/cifar10 (python batches)."""
    for name, ext in (("mnist", ".gz"), ("fashion_mnist", "")):
        for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
            x, y = fake_images(n, (28, 28), seed)
            write_idx(data_dir / name / f"{prefix}-images-idx3-ubyte{ext}", x)
            write_idx(data_dir / name / f"{prefix}-labels-idx1-ubyte{ext}", y.astype(np.uint8))
    folder = data_dir / "cifar10" / "cifar-10-batches-py"
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}", *fake_images(n_train // 5, (3, 32, 32), 10 + i))
    write_cifar_batch(folder / "test_batch", *fake_images(n_test, (3, 32, 32), 20))
