"""Deterministic array files.

``.npy`` files are written with ``np.save`` only: ``np.savez`` stores zip timestamps, so the same arrays
would hash differently on every run and DVC would see changed data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlzoo.errors import DataError


def save_arrays(folder: Path, **arrays: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        np.save(folder / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)


def load_array(path: Path, fix: str) -> np.ndarray:
    if not path.exists():
        raise DataError(f"missing data file {path}: {fix}")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError/OSError/EOFError on truncated or foreign files
        raise DataError(f"corrupt data file {path} ({type(exc).__name__}: {exc}): {fix}") from exc
