"""One LightningDataModule for the in-memory array datasets (digits, MNIST-1D, and the user's MNIST,
Fashion-MNIST and CIFAR-10 once prepared).

Splits come from the `prepare` stage (artifacts/splits/<dataset>/). Everything is small, so tensors are
built once and kept in memory; batches are drawn with no worker processes and no per-batch copies.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from dlzoo.data.arrays import load_array
from dlzoo.data.batched import tensor_loader
from dlzoo.errors import ConfigError
from dlzoo.paths import SPLITS_FIX_HINT

SPLITS = ("train", "val", "test")
NUM_CLASSES = {"digits": 10, "mnist1d": 10, "mnist1d_shuffled": 10, "mnist": 10, "fashion_mnist": 10, "cifar10": 10,
               "ring8": 8}


def _normalise(name: str, x: np.ndarray) -> np.ndarray:
    if name == "digits":
        return x / 16.0  # raw intensities are 0..16
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0  # MNIST, Fashion-MNIST, CIFAR-10 pixels
    return x  # MNIST-1D signals are already centred, O(1)


class ArrayDataModule(pl.LightningDataModule):
    """Batches of ``(x, y)``; x is (N, C, H, W) for images and (N, 1, L) for 1-D signals."""

    OUTPUTS = NUM_CLASSES  # dataset -> number of network outputs (subclasses for other tasks replace it)
    TASK = "classify"  # the datasets registered in dlzoo/data/sources/ for this task are accepted too

    @classmethod
    def known_outputs(cls) -> dict[str, int]:
        from dlzoo.data.registry import outputs

        return {**outputs(cls.TASK), **cls.OUTPUTS}

    def __init__(self, name: str, splits_dir: str | Path, batch_size: int = 64, num_workers: int = 0,
                 image_size: int | None = None, seed: int = 0, standardize: bool = True,
                 augment: dict | None = None, train_samples: int | None = None):
        super().__init__()
        known = self.known_outputs()
        if name not in known:
            raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(known)}")
        self.name, self.splits_dir = name, Path(splits_dir)
        self.batch_size, self.num_workers, self.image_size, self.seed = batch_size, num_workers, image_size, seed
        # train.steps_per_execution: training batches of so many times batch_size, cut into steps by the task
        self.steps_per_execution = 1
        self.channels_last = False  # train.channels_last: image batches (N, C, H, W) stored NHWC on arrival
        self.num_classes = known[name]
        self.standardize = standardize
        # set by dlzoo.builders from the trainer: page-locked batches when they go to a CUDA GPU
        self.pin_memory = False
        self.train_samples = train_samples  # a smaller training set: a seeded random subset of this many samples
        from dlzoo.data.augment import Augment

        self.augment = Augment.from_config(augment)  # training batches only
        self.datasets: dict[str, TensorDataset] = {}
        self.stats: tuple[float, float] = (0.0, 1.0)  # (mean, std) of the training inputs
        # positions of a shuffled dataset (mnist1d_shuffled): x_stored = x_signal[..., permutation]
        perm_file = self.splits_dir / name / "permutation.npy"
        self.permutation = torch.from_numpy(np.load(perm_file)) if perm_file.exists() else None

    def _load(self, split: str) -> TensorDataset:
        folder = self.splits_dir / self.name
        x = load_array(folder / f"x_{split}.npy", SPLITS_FIX_HINT)
        y = load_array(folder / f"y_{split}.npy", SPLITS_FIX_HINT)
        return TensorDataset(self._tensor(x), torch.from_numpy(y.astype(np.int64)))

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        """Raw samples as stored in the splits -> scaled float tensor (N, C, ...) at the configured size."""
        xt = torch.from_numpy(_normalise(self.name, x).astype(np.float32))
        if xt.ndim in (2, 3):  # (N, L) signals, (N, H, W) grey images: add the channel dim
            xt = xt.unsqueeze(1)
        if xt.ndim == 4 and self.image_size and xt.shape[-1] != self.image_size:
            xt = torch.nn.functional.interpolate(xt, size=(self.image_size,) * 2, mode="bilinear", align_corners=False)
        return xt.contiguous()

    def prepare_inputs(self, x: np.ndarray) -> torch.Tensor:
        """New raw samples (N, *raw sample shape), as the splits store them, -> network inputs: the same
        scaling, resizing and standardisation (training statistics) as the splits get. Call after setup()."""
        xt = self._tensor(x)
        return (xt - self.stats[0]) / self.stats[1] if self.standardize else xt

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.datasets = {split: self._load(split) for split in SPLITS}
        if self.train_samples:
            self.datasets["train"] = self._subset(self.datasets["train"], self.train_samples)
        self.augment.check(self.name, tuple(self.datasets["train"].tensors[0].shape[1:]))
        if self.standardize:  # one scalar mean/std from the training split, applied to every split
            x = self.datasets["train"].tensors[0]
            self.stats = (float(x.mean()), float(x.std()))
            for ds in self.datasets.values():
                ds.tensors = ((ds.tensors[0] - self.stats[0]) / self.stats[1], ds.tensors[1])

    def _subset(self, ds: TensorDataset, n: int) -> TensorDataset:
        """``data.train_samples``: n training samples drawn at random (seeded by the run's seed, so that every
        variant trained with that seed sees the same ones); validation and test stay whole."""
        if n > len(ds):
            raise ConfigError(f"data.train_samples={n} is larger than the {len(ds)} training samples of {self.name}; "
                             f"choose an integer in [1, {len(ds)}] or null for all")
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(self.seed))[:n]
        return TensorDataset(*(t[idx] for t in ds.tensors))

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.channels_last and isinstance(batch, (tuple, list)) and batch and batch[0].dim() == 4:
            batch = (batch[0].contiguous(memory_format=torch.channels_last), *batch[1:])
        # (x, y) training batches only: Lightning's model summary sends the task's example input (x,) here too
        if self.steps_per_execution > 1:  # the task augments each step's share (augment_step), in step order
            return batch
        return self.augment_step(batch)

    def augment_step(self, batch):
        """The training batch of one optimizer step, augmented (``regularizer.augment``); anything else as it is.
        With several steps per Lightning batch (``train.steps_per_execution``) the task calls it once per step,
        so the random draws come in the same order as with one step per batch, between the same forward passes
        (dropout draws from the same generator): the augmented samples and the run's figures stay the same."""
        if self.augment.active and self.trainer is not None and self.trainer.training and len(batch) == 2:
            x, y = batch
            fill = (0.0 - self.stats[0]) / self.stats[1]  # where raw inputs are 0 (background), after scaling
            if self.permutation is None:
                batch = (self.augment(x - fill) + fill, y)
            else:  # augment the signal, not its storage order: un-shuffle, augment, shuffle again
                inverse = torch.argsort(self.permutation)
                batch = (self.augment(x[..., inverse] - fill)[..., self.permutation] + fill, y)
        return batch

    @property
    def input_shape(self) -> tuple[int, ...]:
        self.setup()
        return tuple(self.datasets["train"].tensors[0].shape[1:])

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = self.datasets[split]
        batch_size = self.batch_size * (self.steps_per_execution if split == "train" else 1)
        world = self.trainer.world_size if self.trainer is not None else 1
        if world > 1:
            # Shard among DDP ranks with no sample seen twice: training drops the remainder (every rank takes
            # the same number of steps); evaluation shards unevenly and metrics are synced (summed), so
            # every test sample counts exactly once. Lightning keeps a DistributedSampler it is given.
            from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
            from torch.utils.data import DistributedSampler

            rank = self.trainer.global_rank
            sampler = (DistributedSampler(ds, world, rank, shuffle=True, seed=self.seed, drop_last=True) if shuffle
                       else UnrepeatedDistributedSampler(ds, world, rank, shuffle=False))
            return tensor_loader(ds, batch_size, sampler=sampler, num_workers=self.num_workers,
                                 persistent_workers=self.num_workers > 0, pin_memory=self.pin_memory)
        g = torch.Generator().manual_seed(self.seed)
        return tensor_loader(ds, batch_size, shuffle=shuffle, num_workers=self.num_workers,
                             generator=g if shuffle else None, persistent_workers=self.num_workers > 0,
                             pin_memory=self.pin_memory)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
