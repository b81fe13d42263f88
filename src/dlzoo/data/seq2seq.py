"""The LightningDataModule of the synthetic sequence-to-sequence data (dlzoo.data.synthetic).

Batches are (src, tgt) token-id rows padded with PAD; the task trims each batch to its longest row.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from dlzoo.data.arrays import load_array
from dlzoo.data.batched import tensor_loader
from dlzoo.data.synthetic import PAD, SPLITS
from dlzoo.paths import SPLITS_FIX_HINT


def lengths(tokens: torch.Tensor) -> torch.Tensor:
    """Non-PAD tokens per row: (B, T) -> (B,)."""
    return (tokens != PAD).sum(1)


class Seq2SeqDataModule(pl.LightningDataModule):
    """Batches of ``(src, tgt)`` token ids, (B, S) and (B, T), padded with PAD to the split's width.

    ``generate``: keyword arguments of ``dlzoo.data.synthetic.make_names`` (its ``seed`` included): the splits are
    made in memory from them instead of read from the prepare stage's files (a task that needs no stage)."""

    def __init__(self, name: str, splits_dir: str | Path, batch_size: int = 128, seed: int = 0,
                 generate: dict | None = None):
        super().__init__()
        self.name, self.splits_dir, self.batch_size, self.seed = name, Path(splits_dir), batch_size, seed
        self.generate = generate
        self.datasets: dict[str, TensorDataset] = {}
        # set by dlzoo.builders from the trainer: page-locked batches when they go to a CUDA GPU
        self.pin_memory = False

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if self.generate:
            from dlzoo.data.synthetic import make_names

            arrays = {k: torch.from_numpy(v) for k, v in make_names(**self.generate).items()}
            self.datasets = {k[4:]: TensorDataset(v, arrays[f"tgt_{k[4:]}"]) for k, v in arrays.items() if k.startswith("src_")}
            return
        folder = self.splits_dir / self.name
        for split in SPLITS:
            src, tgt = (torch.from_numpy(load_array(folder / f"{k}_{split}.npy", SPLITS_FIX_HINT)) for k in ("src", "tgt"))
            self.datasets[split] = TensorDataset(src, tgt)

    @property
    def input_shape(self) -> tuple[int, ...]:
        self.setup()
        return tuple(self.datasets["train"].tensors[0].shape[1:])

    @property
    def num_classes(self) -> int:
        """The vocabulary size (specials + symbols)."""
        self.setup()
        return int(max(ds.tensors[1].max() for ds in self.datasets.values())) + 1

    def loader(self, split: str, shuffle: bool = False) -> DataLoader:
        g = torch.Generator().manual_seed(self.seed)
        return tensor_loader(self.datasets[split], self.batch_size, shuffle=shuffle,
                             generator=g if shuffle else None, pin_memory=self.pin_memory)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")
