"""Regression data (diabetes, the seeded 1-D synthetic function): real-valued targets, per-feature scaling.

Inputs are standardised per feature with the training split's statistics (diabetes' raw features range
from 0/1 sex codes to serum levels in the hundreds). Targets stay in their own units; their training mean
and std (``target_stats``) let the task learn on standardised targets and report errors in real units.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from dlzoo.data.arrays import load_array
from dlzoo.data.datamodule import SPLITS, ArrayDataModule
from dlzoo.paths import SPLITS_FIX_HINT


class RegressionDataModule(ArrayDataModule):
    """Batches of ``(x, y)``: x (B, F) float features, y (B,) float targets."""

    OUTPUTS = {"diabetes": 1, "synth1d": 1}
    TASK = "regress"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.target_stats: tuple[float, float] = (0.0, 1.0)
        self.feature_stats: tuple[torch.Tensor, torch.Tensor] | None = None  # per-feature (mean, std), (F,) each

    def _load(self, split: str) -> TensorDataset:
        folder = self.splits_dir / self.name
        x = load_array(folder / f"x_{split}.npy", SPLITS_FIX_HINT).astype(np.float32)
        y = load_array(folder / f"y_{split}.npy", SPLITS_FIX_HINT).astype(np.float32)
        return TensorDataset(torch.from_numpy(x.reshape(len(x), -1)), torch.from_numpy(y))  # (N, F), (N,)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.datasets = {split: self._load(split) for split in SPLITS}
        x, y = self.datasets["train"].tensors
        self.target_stats = (float(y.mean()), float(y.std()))
        if self.standardize:
            mean, std = x.mean(0), x.std(0).clamp_min(1e-8)  # (F,)
            self.feature_stats = (mean, std)
            for ds in self.datasets.values():
                ds.tensors = ((ds.tensors[0] - mean) / std, ds.tensors[1])
