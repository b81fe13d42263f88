"""Whole-batch loading of datasets held in memory as tensors.

torch's DataLoader over a ``TensorDataset`` fetches a batch sample by sample (``dataset[i]`` for each of its
indices: two tensor indexings per sample) and then stacks them (``default_collate``): for a batch of 64 that is
~130 small tensor operations, a few hundred microseconds per step, which is most of a step of the small models
here on a GPU and a large part of one on a CPU. ``BatchTensors`` answers the DataLoader's batched fetch
(``__getitems__``, which the DataLoader calls with the whole list of a batch's indices) with one indexing per
tensor. The sampler is the DataLoader's own (``shuffle``, ``generator``, a ``DistributedSampler``), so the
batches hold the same samples in the same order and the same values as before — a run's figures do not change —
and Lightning can still swap the sampler for DDP.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset


class BatchTensors(TensorDataset):
    """A ``TensorDataset`` whose batches are cut from its tensors in one indexing each."""

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return [t[idx] for t in self.tensors]  # a list, as default_collate makes of (x, y) samples


def whole_batch(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    """The collate function of a ``BatchTensors`` loader: ``__getitems__`` has already built the batch."""
    return batch


def tensor_loader(ds: TensorDataset, batch_size: int, **kwargs) -> DataLoader:
    """A DataLoader over ``ds``'s tensors that fetches whole batches; ``kwargs`` as DataLoader's (shuffle,
    generator, sampler, num_workers, pin_memory, ...)."""
    return DataLoader(BatchTensors(*ds.tensors), batch_size=batch_size, collate_fn=whole_batch, **kwargs)
