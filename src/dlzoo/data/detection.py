"""The LightningDataModule of the detection canvases (dlzoo.data.canvas, made by the prepare stage).

Batches are ``(x, targets)``: x (B, 1, H, W) in [0, 1], targets (B, K, 5) rows ``(label, x1, y1, x2, y2)``
in pixels, label -1 in unused slots. ``fresh_canvases=True`` draws new training canvases every epoch from the
training split's digits (seeded by seed and epoch) instead of reusing the prepared ones.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from dlzoo.data.arrays import load_array
from dlzoo.data.batched import tensor_loader
from dlzoo.data.canvas import make_canvases
from dlzoo.paths import SPLITS_FIX_HINT

SPLITS = ("train", "val", "test")


def to_tensors(canvases: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """make_canvases' arrays -> (x (N, 1, H, W) float in [0, 1], targets (N, K, 5))."""
    x = torch.from_numpy(canvases["x"]).float().div_(255).unsqueeze(1)
    targets = torch.cat([torch.from_numpy(canvases["labels"]).float().unsqueeze(-1), torch.from_numpy(canvases["boxes"])], -1)
    return x, targets


class FreshCanvases(IterableDataset):
    """``n`` new training canvases on every pass (epoch), drawn from ``glyphs`` with rng (seed, pass)."""

    def __init__(self, glyphs: np.ndarray, labels: np.ndarray, n: int, seed: int, size: int, max_objects: int):
        self.glyphs, self.labels, self.n, self.seed = glyphs, labels, n, seed
        self.size, self.max_objects = size, max_objects
        self.passes = 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.passes])
        self.passes += 1
        x, t = to_tensors(make_canvases(self.glyphs, self.labels, self.n, rng, self.size, max_objects=self.max_objects))
        return zip(x, t)


class DetectionDataModule(pl.LightningDataModule):
    def __init__(self, name: str, splits_dir: str | Path, batch_size: int = 64, seed: int = 0,
                 fresh_canvases: bool = False, num_classes: int = 10):
        super().__init__()
        self.name, self.splits_dir, self.batch_size, self.seed = name, Path(splits_dir), batch_size, seed
        self.fresh_canvases, self.num_classes = fresh_canvases, num_classes
        self.datasets: dict[str, TensorDataset] = {}
        # set by dlzoo.builders from the trainer: page-locked batches when they go to a CUDA GPU
        self.pin_memory = False

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        folder = self.splits_dir / self.name
        for split in SPLITS:
            arrays = {k: load_array(folder / f"{k}_{split}.npy", SPLITS_FIX_HINT) for k in ("x", "boxes", "labels")}
            self.datasets[split] = TensorDataset(*to_tensors(arrays))

    @property
    def input_shape(self) -> tuple[int, ...]:
        self.setup()
        return tuple(self.datasets["train"].tensors[0].shape[1:])

    def _loader(self, split: str) -> DataLoader:
        return tensor_loader(self.datasets[split], self.batch_size, pin_memory=self.pin_memory)

    def train_dataloader(self) -> DataLoader:
        self.setup()
        if self.fresh_canvases:
            folder = self.splits_dir / self.name
            x, t = self.datasets["train"].tensors
            ds = FreshCanvases(load_array(folder / "glyphs_train.npy", SPLITS_FIX_HINT),
                               load_array(folder / "glyph_labels_train.npy", SPLITS_FIX_HINT),
                               len(x), self.seed, x.shape[-1], t.shape[1])
            return DataLoader(ds, batch_size=self.batch_size, pin_memory=self.pin_memory)
        g = torch.Generator().manual_seed(self.seed)
        return tensor_loader(self.datasets["train"], self.batch_size, shuffle=True, generator=g,
                             pin_memory=self.pin_memory)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
