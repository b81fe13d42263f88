"""Materialise the embedded raw datasets into ``data/`` (tracked by ``data.dvc``).

Every file is a pure function of the installed packages, so a fresh clone produces the bytes that
``data.dvc`` records and ``dvc status`` stays clean. Run ``python -m dlzoo.data.materialize``
(``make data`` also checks the result against ``data.dvc``).

- ``digits``: scikit-learn's bundled 8x8 digits, 1797 images, raw intensities 0..16.
- ``mnist1d``: built offline with the ``mnist1d`` package's ``make_dataset`` and its default args
  (seed 42, 4000 train / 1000 test, length 40). Its ``get_dataset`` would download; it is never called.
- ``diabetes``: scikit-learn's bundled diabetes regression set (442 x 10, unscaled features, float target).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dlzoo.data.arrays import save_arrays
from dlzoo.paths import project_root

DATASETS = ("digits", "mnist1d", "diabetes")


def build_digits() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return {"x": d.images.astype(np.float32), "y": d.target.astype(np.int64)}


def build_mnist1d() -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    d = make_dataset(get_dataset_args())
    return {
        "x_train": d["x"].astype(np.float32),
        "y_train": d["y"].astype(np.int64),
        "x_test": d["x_test"].astype(np.float32),
        "y_test": d["y_test"].astype(np.int64),
    }


def build_diabetes() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_diabetes

    d = load_diabetes(scaled=False)
    return {"x": d.data.astype(np.float32), "y": d.target.astype(np.float32)}


BUILDERS = {"digits": build_digits, "mnist1d": build_mnist1d, "diabetes": build_diabetes}


def materialize(out: Path) -> list[Path]:
    written = []
    for name in DATASETS:
        save_arrays(out / name, **BUILDERS[name]())
        written.extend(sorted((out / name).glob("*.npy")))
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="target folder (default: <project>/data)")
    args = ap.parse_args(argv)
    out = args.out or project_root() / "data"
    files = materialize(out)
    print(f"materialised {len(files)} files under {out}")


if __name__ == "__main__":
    main()
