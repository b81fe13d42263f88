"""Readers for the user's own datasets in their standard formats.

- IDX (MNIST, Fashion-MNIST; http://yann.lecun.com/exdb/mnist/): a big-endian header -- two zero bytes,
  a dtype code, the number of dimensions -- then one 4-byte size per dimension, then the data. Plain or
  gzip-compressed (``.gz``) files.
- CIFAR-10 python batches (https://www.cs.toronto.edu/~kriz/cifar.html): pickled dicts with ``data``
  (N x 3072 uint8, channel-major 32x32) and ``labels``.

Written here rather than taken from torchvision (which does not install beside this torch build); a
truncated file, a wrong magic number or a foreign pickle raises a DataError that names the file.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

from dlzoo.errors import DataError

# IDX dtype codes -> numpy big-endian dtypes
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = ("test_batch",)


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DataError(f"missing data file {path}")
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")) as f:
            return f.read()
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
        raise DataError(f"corrupt data file {path} ({type(exc).__name__}: {exc})") from exc


def read_idx(path: Path) -> np.ndarray:
    """An IDX file as a native-endian numpy array of the shape its header gives."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file: bad magic number {raw[:4].hex() or '(empty)'} "
                        "(expected 0000 + dtype code + ndim, e.g. 00000803 for images)")
    dtype, ndim = np.dtype(IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated: its header announces {ndim} dimensions but the file has {len(raw)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = header + dtype.itemsize * int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"{path} is truncated or padded: shape {shape} needs {expected} bytes, the file has {len(raw)}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch as (images (N, 3, 32, 32) uint8, labels (N,) int64)."""
    path = Path(path)
    raw = _read_bytes(path)
    try:
        d = pickle.loads(raw, encoding="bytes")  # the official batches are Python-2 pickles
    except Exception as exc:  # noqa: BLE001 -- pickle raises many kinds on truncated input
        raise DataError(f"{path} is not a readable CIFAR python batch ({type(exc).__name__}: {exc}); "
                        "truncated download?") from exc
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise DataError(f"{path} is not a CIFAR-10 python batch: expected a dict with 'data' and 'labels'")
    data, labels = np.asarray(d[b"data"], dtype=np.uint8), np.asarray(d[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataError(f"{path}: 'data' has shape {data.shape} and there are {len(labels)} labels; expected "
                        "(N, 3072) and N labels")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar10(folder: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    parts = [read_cifar_batch(folder / n) for n in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def find(folder: Path, name: str) -> Path:
    """``folder/name`` or its gzip-compressed ``name.gz`` (the form MNIST is distributed in)."""
    for p in (folder / name, folder / f"{name}.gz"):
        if p.exists():
            return p
    raise DataError(f"missing data file {folder / name} (or {name}.gz)")
