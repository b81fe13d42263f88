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


@pytest.mark.parametrize("sampler", ["sequential", "shuffled", "distributed"])
def test_whole_batch_loader_gives_the_batches_of_torchs_loader(sampler):
    """The in-memory loader cuts each batch in one indexing per tensor; its batches are those of torch's
    sample-by-sample DataLoader with the same sampler and seed: same samples, order, values and dtypes."""
    import torch
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    from dlzoo.data.batched import tensor_loader

    g = torch.Generator().manual_seed(3)
    ds = TensorDataset(torch.randn(203, 1, 8, 8, generator=g), torch.randint(0, 10, (203,), generator=g))
    kwargs = {"sequential": {}, "shuffled": {"shuffle": True},
              "distributed": {"sampler": DistributedSampler(ds, num_replicas=2, rank=1, shuffle=True, seed=5)}}[sampler]
    for epoch in range(2):  # the generator moves on between epochs in both
        if sampler == "distributed":
            kwargs["sampler"].set_epoch(epoch)
        ours = list(tensor_loader(ds, 64, **kwargs, **({"generator": torch.Generator().manual_seed(epoch)}
                                                      if sampler == "shuffled" else {})))
        torchs = list(DataLoader(ds, batch_size=64, **kwargs, **({"generator": torch.Generator().manual_seed(epoch)}
                                                                 if sampler == "shuffled" else {})))
        assert len(ours) == len(torchs) > 1
        for a, b in zip(ours, torchs):
            assert type(a) is type(b) and len(a) == len(b) == 2
            for ta, tb in zip(a, b):
                assert ta.dtype == tb.dtype and ta.shape == tb.shape and torch.equal(ta, tb)


def test_datamodule_loaders_fetch_whole_batches(tmp_path):
    """Every split's loader of the array datamodule takes the whole-batch path (one fetch per batch)."""
    from dlzoo.data.batched import BatchTensors
    from dlzoo.data.datamodule import ArrayDataModule

    splits = tmp_path / "splits"
    prepare(ROOT / "data", splits, seed=0, val_fraction=0.15, test_fraction=0.2, datasets=["digits"])
    dm = ArrayDataModule("digits", splits, batch_size=32)
    dm.setup()
    calls = []
    for make in (dm.train_dataloader, dm.val_dataloader, dm.test_dataloader):
        loader = make()
        assert isinstance(loader.dataset, BatchTensors)
        fetch = loader.dataset.__getitems__
        loader.dataset.__getitems__ = lambda idx, fetch=fetch: calls.append(len(idx)) or fetch(idx)
        n = sum(len(y) for _, y in loader)
        assert n == len(loader.dataset) and len(calls) == len(loader)
        calls.clear()
