"""Batch-level data augmentation applied after the batch reaches its device (training only).

Random translation in the manner of torchvision's ``RandomAffine(translate=...)``: each sample moves by
up to ``translate`` x its size along every spatial axis, with zero fill. It runs on whole batches so it
costs one ``grid_sample`` (images) or one gather (1-D signals) per batch, not a Python loop per sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_translate(x: torch.Tensor, translate: float, generator: torch.Generator | None = None) -> torch.Tensor:
    if translate <= 0:
        return x
    b = x.shape[0]
    if x.ndim == 4:  # (B, C, H, W): integer-pixel shifts through an affine grid, nearest sampling
        h, w = x.shape[-2:]
        max_px = torch.tensor([round(translate * w), round(translate * h)], dtype=x.dtype)
        shift = torch.round((torch.rand(b, 2, generator=generator) * 2 - 1) * max_px)  # pixels (dx, dy)
        theta = torch.zeros(b, 2, 3, dtype=x.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        theta[:, 0, 2] = -2 * shift[:, 0] / w
        theta[:, 1, 2] = -2 * shift[:, 1] / h
        grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    if x.ndim == 3:  # (B, C, L): shift along L with zero fill
        length = x.shape[-1]
        k = max(1, round(translate * length))
        shift = torch.randint(-k, k + 1, (b, 1, 1), generator=generator).to(x.device)
        idx = torch.arange(length, device=x.device).view(1, 1, -1) - shift  # source position per output position
        valid = (idx >= 0) & (idx < length)
        out = torch.gather(x, 2, idx.clamp(0, length - 1).expand(-1, x.shape[1], -1))
        return out * valid
    return x
