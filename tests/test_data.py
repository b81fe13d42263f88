"""Raw data materialisation (byte-identical) and the prepare stage's splits."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from conftest import ROOT
from dlzoo.data.arrays import load_array
from dlzoo.data.materialize import materialize
from dlzoo.errors import DataError
from dlzoo.prepare import prepare


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.npy"))}


def test_materialise_is_byte_identical_to_data_dir(tmp_path):
    materialize(tmp_path / "a")
    assert _digest(tmp_path / "a") == _digest(ROOT / "data")


def test_datasets_have_the_documented_shapes():
    x = np.load(ROOT / "data/digits/x.npy")
    assert x.shape == (1797, 8, 8) and x.max() == 16
    assert np.load(ROOT / "data/mnist1d/x_train.npy").shape == (4000, 40)
    assert np.load(ROOT / "data/mnist1d/x_test.npy").shape == (1000, 40)
    assert np.load(ROOT / "data/diabetes/x.npy").shape == (442, 10)


def test_splits_are_disjoint_stratified_and_seeded(tmp_path):
    a = prepare(ROOT / "data", tmp_path / "a", seed=3, val_fraction=0.15, test_fraction=0.2)
    prepare(ROOT / "data", tmp_path / "b", seed=3, val_fraction=0.15, test_fraction=0.2)
    prepare(ROOT / "data", tmp_path / "c", seed=4, val_fraction=0.15, test_fraction=0.2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert sum(a["digits"].values()) == 1797 and a["mnist1d"]["test"] == 1000
    assert a["mnist1d"]["train"] + a["mnist1d"]["val"] == 4000
    assert sum(a["diabetes"].values()) == 442
    d = tmp_path / "a" / "digits"
    rows = {s: {r.tobytes() for r in np.load(d / f"x_{s}.npy")} for s in ("train", "val", "test")}
    # digits contains a few exact duplicate images; disjoint indices means overlaps stay tiny
    assert len(rows["train"] & rows["test"]) <= 2 and len(rows["val"] & rows["test"]) <= 1
    y_tr, y_te = np.load(d / "y_train.npy"), np.load(d / "y_test.npy")
    share_tr = np.bincount(y_tr, minlength=10) / len(y_tr)
    share_te = np.bincount(y_te, minlength=10) / len(y_te)
    assert np.abs(share_tr - share_te).max() < 0.01  # stratified


def test_missing_data_names_file_and_fix(tmp_path):
    with pytest.raises(DataError) as exc:
        prepare(tmp_path / "nodata", tmp_path / "out", seed=0, val_fraction=0.1, test_fraction=0.2)
    assert "digits/x.npy" in str(exc.value) and "make data" in str(exc.value)


def test_corrupt_data_names_file_and_fix(tmp_path):
    bad = tmp_path / "x.npy"
    bad.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError) as exc:
        load_array(bad, "run `make data`")
    assert str(bad) in str(exc.value) and "corrupt" in str(exc.value) and "make data" in str(exc.value)
