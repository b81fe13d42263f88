"""Plots of detections: test images with the true boxes (green) and the predicted ones (red, class:score)."""

from __future__ import annotations

from pathlib import Path

import torch

from dlzoo.report.plots import _plt, save


def draw_detections(images: torch.Tensor, targets: torch.Tensor, detections: list[dict[str, torch.Tensor]],
                    path: Path, min_score: float = 0.3, cols: int = 4, title: str = "") -> Path:
    """images (N, 1, H, W), targets (N, K, 5) rows (label, x1, y1, x2, y2), label < 0 unused; detections
    scoring below ``min_score`` are not drawn."""
    from matplotlib.patches import Rectangle

    plt = _plt()
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, tgt, det in zip(axes.flat, images, targets, detections):
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
        for label, x1, y1, x2, y2 in tgt[tgt[:, 0] >= 0].tolist():
            ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec="lime", lw=1.5))
        for (x1, y1, x2, y2), score, label in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist()):
            if score >= min_score:
                ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec="red", lw=1, ls="--"))
                ax.text(x1, y1 - 1, f"{label}:{score:.2f}", color="red", fontsize=7, va="bottom")
    fig.suptitle(title or "green: true boxes, red: detections", fontsize=9)
    return save(fig, path)
