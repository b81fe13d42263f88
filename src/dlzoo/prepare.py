"""DVC stage `prepare`: seeded, stratified train/val/test splits of every raw dataset.

Reads its parameters from the ``prepare`` section of ``params.yaml`` (the composed config, so
``dvc exp run -S prepare.seed=1`` works) and writes ``artifacts/splits/<dataset>/{x,y}_{train,val,test}.npy``.
Validation is carved from the training pool; digits has no official test split, so one is carved too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import numpy as np

from dlzoo.data.arrays import load_array, save_arrays
from dlzoo.errors import ConfigError, DlzooError
from dlzoo.paths import DATA_FIX_HINT, project_root


def _split(x, y, fraction: float, seed: int):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=fraction, random_state=seed, stratify=y)


def check_params(p: dict) -> None:
    for key in ("val_fraction", "test_fraction"):
        v = p[key]
        if not (isinstance(v, (int, float)) and 0.0 < v < 1.0):
            raise ConfigError(f"prepare.{key}={v!r}: must be a number in (0, 1)")
    if not isinstance(p["seed"], int) or p["seed"] < 0:
        raise ConfigError(f"prepare.seed={p['seed']!r}: must be an integer >= 0")


Preparer = Callable[[Callable[..., np.ndarray], Path, int, float, float], dict]
# dataset name -> function(arr, out_folder, seed, val_fraction, test_fraction) -> split sizes.
# ``arr("digits", "x.npy")`` loads a raw file from data/ with a clear error when it is missing.
PREPARERS: dict[str, Preparer] = {}


def preparer(name: str) -> Callable[[Preparer], Preparer]:
    def wrap(fn: Preparer) -> Preparer:
        if name in PREPARERS:
            raise ValueError(f"a preparer for {name!r} is already registered")
        PREPARERS[name] = fn
        return fn

    return wrap


def _sizes(**splits) -> dict:
    return {k: len(v) for k, v in splits.items()}


@preparer("digits")
def _digits(arr, out: Path, seed: int, val_fraction: float, test_fraction: float) -> dict:
    # no official test split: test carved first, then val from what remains (both stratified)
    x, y = arr("digits", "x.npy"), arr("digits", "y.npy")
    x_pool, x_te, y_pool, y_te = _split(x, y, test_fraction, seed)
    x_tr, x_va, y_tr, y_va = _split(x_pool, y_pool, val_fraction, seed)
    save_arrays(out, x_train=x_tr, y_train=y_tr, x_val=x_va, y_val=y_va, x_test=x_te, y_test=y_te)
    return _sizes(train=y_tr, val=y_va, test=y_te)


@preparer("mnist1d")
def _mnist1d(arr, out: Path, seed: int, val_fraction: float, test_fraction: float) -> dict:
    # the official 1000-sample test split is kept; val is carved from train (stratified)
    x, y = arr("mnist1d", "x_train.npy"), arr("mnist1d", "y_train.npy")
    x_tr, x_va, y_tr, y_va = _split(x, y, val_fraction, seed)
    x_te, y_te = arr("mnist1d", "x_test.npy"), arr("mnist1d", "y_test.npy")
    save_arrays(out, x_train=x_tr, y_train=y_tr, x_val=x_va, y_val=y_va, x_test=x_te, y_test=y_te)
    return _sizes(train=y_tr, val=y_va, test=y_te)


@preparer("mnist1d_shuffled")
def _mnist1d_shuffled(arr, out: Path, seed: int, val_fraction: float, test_fraction: float) -> dict:
    # MNIST-1D with its 40 positions permuted by one fixed permutation (the paper's "shuffle" row, after
    # Zhang et al. 2017): the same splits as mnist1d, so the two tables compare the same examples.
    sizes = _mnist1d(arr, out, seed, val_fraction, test_fraction)
    perm = np.random.default_rng(seed).permutation(arr("mnist1d", "x_test.npy").shape[-1])
    save_arrays(out, permutation=perm, **{f"x_{k}": np.load(out / f"x_{k}.npy")[:, perm] for k in sizes})
    return sizes


@preparer("sort")
def _sort(arr, out: Path, seed: int, val_fraction: float, test_fraction: float) -> dict:
    # synthetic seq2seq: sort 4-10 tokens of 16 symbols; a `long` split of lengths up to 20 (dlzoo.data.seq2seq)
    from dlzoo.data.synthetic import make_seq2seq

    arrays = make_seq2seq(seed, task="sort")
    save_arrays(out, **arrays)
    return {k[4:]: len(v) for k, v in arrays.items() if k.startswith("src_")}


@preparer("diabetes")
def _diabetes(arr, out: Path, seed: int, val_fraction: float, test_fraction: float) -> dict:
    # regression: stratified on target quintiles so every split covers the whole target range
    x, y = arr("diabetes", "x.npy"), arr("diabetes", "y.npy")
    from sklearn.model_selection import train_test_split

    def split(x, y, frac):
        bins = np.digitize(y, np.quantile(y, [0.2, 0.4, 0.6, 0.8]))
        return train_test_split(x, y, test_size=frac, random_state=seed, stratify=bins)

    x_pool, x_te, y_pool, y_te = split(x, y, test_fraction)
    x_tr, x_va, y_tr, y_va = split(x_pool, y_pool, val_fraction)
    save_arrays(out, x_train=x_tr, y_train=y_tr, x_val=x_va, y_val=y_va, x_test=x_te, y_test=y_te)
    return _sizes(train=y_tr, val=y_va, test=y_te)


@preparer("digits_detect")
def _digits_detect(arr, out: Path, seed: int, val_fraction: float, test_fraction: float) -> dict:
    # detection canvases (dlzoo.data.canvas): each split pastes only the digits of the same split of `digits`
    # (same seed and fractions), so no test glyph is seen in training; the train glyphs are kept for the
    # datamodule's fresh-canvases-every-epoch option.
    from dlzoo.data.canvas import SIZES, make_canvases

    x, y = arr("digits", "x.npy") / 16.0, arr("digits", "y.npy")
    x_pool, x_te, y_pool, y_te = _split(x, y, test_fraction, seed)
    x_tr, x_va, y_tr, y_va = _split(x_pool, y_pool, val_fraction, seed)
    glyphs = {"train": (x_tr, y_tr), "val": (x_va, y_va), "test": (x_te, y_te)}
    arrays: dict[str, np.ndarray] = {"glyphs_train": x_tr.astype(np.float32), "glyph_labels_train": y_tr}
    for i, (split, (gx, gy)) in enumerate(glyphs.items()):
        canvases = make_canvases(gx, gy, SIZES[split], np.random.default_rng([seed, i]))
        arrays.update({f"{k}_{split}": v for k, v in canvases.items()})
    save_arrays(out, **arrays)
    return {split: SIZES[split] for split in glyphs}


# The seeded 1-D synthetic regression function: y = sin(2x) + 0.3 x + N(0, 0.1^2), x ~ U(-3, 3).
SYNTH1D_SIZE, SYNTH1D_NOISE = 1000, 0.1


def synth1d_function(x: np.ndarray) -> np.ndarray:
    return np.sin(2.0 * x) + 0.3 * x


@preparer("synth1d")
def _synth1d(arr, out: Path, seed: int, val_fraction: float, test_fraction: float) -> dict:
    # no raw file: generated from prepare.seed, then split at random (nothing to stratify on)
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(seed)
    x = rng.uniform(-3.0, 3.0, size=(SYNTH1D_SIZE, 1)).astype(np.float32)  # (N, 1)
    y = (synth1d_function(x[:, 0]) + SYNTH1D_NOISE * rng.standard_normal(SYNTH1D_SIZE)).astype(np.float32)  # (N,)
    x_pool, x_te, y_pool, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed)
    x_tr, x_va, y_tr, y_va = train_test_split(x_pool, y_pool, test_size=val_fraction, random_state=seed)
    save_arrays(out, x_train=x_tr, y_train=y_tr, x_val=x_va, y_val=y_va, x_test=x_te, y_test=y_te)
    return _sizes(train=y_tr, val=y_va, test=y_te)


@preparer("ring8")
def _ring8(arr, out: Path, seed: int, val_fraction: float, test_fraction: float) -> dict:
    # no raw file: 8 Gaussians on a ring (GAN mode coverage), fixed split sizes drawn from prepare.seed
    from dlzoo.data.synthetic import make_ring

    arrays = make_ring(seed)
    save_arrays(out, **arrays)
    return {k[2:]: len(v) for k, v in arrays.items() if k.startswith("y_")}


# The user's own datasets (data/<name>/ in their standard formats): prepared when their folder exists.
# name -> function(raw_folder) -> (x_train, y_train, x_test, y_test); the official test split is kept.
UserReader = Callable[[Path], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
USER_DATASETS: dict[str, UserReader] = {}
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _idx_dataset(folder: Path):
    from dlzoo.data.formats import find, read_idx

    x_tr, y_tr, x_te, y_te = (read_idx(find(folder, n)) for n in IDX_FILES)
    return x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64)


def _cifar10(folder: Path):
    from dlzoo.data.formats import CIFAR10_TEST, CIFAR10_TRAIN, read_cifar10

    if (folder / "cifar-10-batches-py").is_dir():  # the official archive, extracted as is
        folder = folder / "cifar-10-batches-py"
    return (*read_cifar10(folder, CIFAR10_TRAIN), *read_cifar10(folder, CIFAR10_TEST))


USER_DATASETS.update(mnist=_idx_dataset, fashion_mnist=_idx_dataset, cifar10=_cifar10)


def _prepare_user(name: str, folder: Path, out: Path, seed: int, val_fraction: float) -> dict:
    x, y, x_te, y_te = USER_DATASETS[name](folder)
    x_tr, x_va, y_tr, y_va = _split(x, y, val_fraction, seed)
    save_arrays(out, x_train=x_tr, y_train=y_tr, x_val=x_va, y_val=y_va, x_test=x_te, y_test=y_te)
    return _sizes(train=y_tr, val=y_va, test=y_te)


def _prepare_source(name: str, data_dir: Path, out: Path, seed: int, val_fraction: float, test_fraction: float) -> dict:
    """A dataset added as a file in dlzoo/data/sources/ (dlzoo.data.registry): its loader's arrays, split."""
    from dlzoo.data.registry import get_dataset

    source = get_dataset(name)
    a = source.arrays(seed=seed, data_dir=data_dir)
    stratify = source.num_classes is not None  # classes: stratified splits; real targets: random ones

    def split(x, y, fraction):
        from sklearn.model_selection import train_test_split

        return train_test_split(x, y, test_size=fraction, random_state=seed, stratify=y if stratify else None)

    if "x_test" in a:  # the loader's own test split is kept
        x_pool, y_pool, x_te, y_te = a["x_train"], a["y_train"], a["x_test"], a["y_test"]
    else:
        x_pool, x_te, y_pool, y_te = split(a["x"], a["y"], test_fraction)
    x_tr, x_va, y_tr, y_va = split(x_pool, y_pool, val_fraction)
    save_arrays(out, x_train=x_tr, y_train=y_tr, x_val=x_va, y_val=y_va, x_test=x_te, y_test=y_te)
    return _sizes(train=y_tr, val=y_va, test=y_te)


def prepare(data_dir: Path, out_dir: Path, seed: int, val_fraction: float, test_fraction: float,
            datasets: list[str] | None = None) -> dict:
    """Write the splits of every registered dataset (or of ``datasets``) to ``out_dir/<name>/``; the user's
    datasets (USER_DATASETS) only where ``data_dir/<name>/`` exists, unless named in ``datasets``. Datasets
    added as files in dlzoo/data/sources/ are registered too (dlzoo.data.registry)."""
    from dlzoo.data.registry import list_datasets

    check_params({"seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction})

    def arr(*parts):
        return load_array(data_dir.joinpath(*parts), DATA_FIX_HINT)

    sources = list_datasets()
    names = datasets or [*PREPARERS, *sources, *(n for n in USER_DATASETS if (data_dir / n).is_dir())]
    unknown = sorted(set(names) - set(PREPARERS) - set(sources) - set(USER_DATASETS))
    if unknown:
        raise ConfigError(f"unknown dataset(s) {unknown}; choose from {sorted({*PREPARERS, *sources, *USER_DATASETS})}")
    args = (seed, val_fraction, test_fraction)
    return {name: PREPARERS[name](arr, out_dir / name, *args) if name in PREPARERS
            else _prepare_source(name, data_dir, out_dir / name, *args) if name in sources
            else _prepare_user(name, data_dir / name, out_dir / name, seed, val_fraction) for name in names}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=None, help="params file (default: <project>/params.yaml)")
    ap.add_argument("--data", type=Path, default=None, help="raw data folder (default: <project>/data)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: <project>/artifacts/splits)")
    ap.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                    help="prepare only these datasets (default: all of them)")
    args = ap.parse_args(argv)
    root = project_root()
    from omegaconf import OmegaConf

    params = OmegaConf.to_container(OmegaConf.load(args.params or root / "params.yaml").prepare)
    try:
        summary = prepare(args.data or root / "data", args.out or root / "artifacts" / "splits", **params,
                          datasets=args.datasets)
    except DlzooError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
