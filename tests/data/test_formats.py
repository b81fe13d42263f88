"""The user datasets: IDX (MNIST, Fashion-MNIST) and CIFAR-10 python batches, parsed from small files
written in the real formats; damaged files give errors that name them."""

from __future__ import annotations

import numpy as np
import pytest

from dlzoo.data.formats import read_cifar_batch, read_idx
from dlzoo.errors import DataError
from userdata import fake_images, idx_bytes, write_cifar_batch, write_idx, write_user_datasets


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("arr", [np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
                                 np.array([3, -7, 70000], dtype=np.int32),
                                 np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2)])
def test_idx_round_trip(tmp_path, arr, suffix):
    back = read_idx(write_idx(tmp_path / f"a-idx{suffix}", arr))
    assert back.dtype == arr.dtype and np.array_equal(back, arr)


def test_idx_header_is_the_official_one():
    data = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    assert data[:4] == bytes.fromhex("00000803")  # MNIST images: ubyte, 3 dimensions
    assert data[4:16] == bytes.fromhex("00000002 0000001c 0000001c".replace(" ", ""))


def test_idx_wrong_magic_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(100))  # a gzip stream saved without .gz
    with pytest.raises(DataError, match=f"{path}.*magic"):
        read_idx(path)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_truncated_idx_names_the_file(tmp_path, suffix):
    path = write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", np.ones((3, 28, 28), np.uint8))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 50])
    with pytest.raises(DataError, match=str(path)):
        read_idx(path)


def test_cifar_batch_round_trip_and_damage(tmp_path):
    images, labels = fake_images(7, (3, 32, 32), seed=0)
    path = write_cifar_batch(tmp_path / "data_batch_1", images, labels)
    x, y = read_cifar_batch(path)
    assert x.shape == (7, 3, 32, 32) and x.dtype == np.uint8 and np.array_equal(x, images)
    assert np.array_equal(y, labels)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataError, match=f"{path}.*truncated"):
        read_cifar_batch(path)
    other = tmp_path / "test_batch"
    other.write_bytes(__import__("pickle").dumps({b"images": []}))
    with pytest.raises(DataError, match=f"{other}.*CIFAR-10"):
        read_cifar_batch(other)


def test_prepare_and_load_the_user_datasets(tmp_path):
    from dlzoo.data.datamodule import ArrayDataModule
    from dlzoo.models import get_model
    from dlzoo.prepare import prepare

    write_user_datasets(tmp_path / "data", n_train=100, n_test=30)
    sizes = prepare(tmp_path / "data", tmp_path / "splits", seed=0, val_fraction=0.2, test_fraction=0.2,
                    datasets=["mnist", "fashion_mnist", "cifar10"])
    assert sizes["mnist"] == {"train": 80, "val": 20, "test": 30}  # the official test split is kept
    for name, shape in (("mnist", (1, 28, 28)), ("fashion_mnist", (1, 28, 28)), ("cifar10", (3, 32, 32))):
        dm = ArrayDataModule(name, tmp_path / "splits", batch_size=8)
        assert dm.input_shape == shape
        x, y = next(iter(dm.train_dataloader()))
        assert abs(float(dm.datasets["train"].tensors[0].mean())) < 1e-4  # standardised from uint8 pixels
        net = get_model("resnet18", input_shape=shape, num_classes=dm.num_classes)
        assert net(x).shape == (8, 10)
    resized = ArrayDataModule("mnist", tmp_path / "splits", image_size=32)
    assert resized.input_shape == (1, 32, 32)


def test_user_datasets_are_optional_but_a_named_missing_one_is_an_error(tmp_path, root):
    import os
    import shutil

    from dlzoo.prepare import PREPARERS, prepare

    data = tmp_path / "data"
    write_user_datasets(data, n_train=50, n_test=10)
    shutil.rmtree(data / "mnist")
    (data / "fashion_mnist" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        prepare(data, tmp_path / "splits", 0, 0.2, 0.2, datasets=["fashion_mnist"])
    shutil.rmtree(data / "fashion_mnist")
    for name in PREPARERS:  # the embedded datasets, always prepared
        os.symlink(root / "data" / name, data / name)
    sizes = prepare(data, tmp_path / "splits", 0, 0.2, 0.2)
    assert set(sizes) == {*PREPARERS, "cifar10"}  # only the user datasets that are present
