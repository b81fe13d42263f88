"""Plots for runs and reports (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> Path:
    """Lay out, write (creating the folder) and close a figure."""
    plt = _plt()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curves(history: dict[str, list[tuple[int, float]]], path: Path, title: str = "") -> Path:
    """history: metric key -> [(epoch, value)]. Losses on the left axis, accuracies on the right."""
    plt = _plt()
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, points in sorted(history.items()):
        if not points:
            continue
        xs, ys = zip(*points)
        (ax_l if key.endswith("loss") else ax_a).plot(xs, ys, marker=".", label=key)
    for ax, name in ((ax_l, "loss"), (ax_a, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.suptitle(title)
    return save(fig, path)


def confusion_matrix(cm: np.ndarray, path: Path, labels: Sequence[str] | None = None, title: str = "") -> Path:
    plt = _plt()
    n = cm.shape[0]
    labels = list(labels or range(n))
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    thresh = cm.max() / 2 if cm.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > thresh else "black")
    ax.set_title(title or f"confusion matrix (acc {np.trace(cm) / max(cm.sum(), 1):.3f})")
    return save(fig, path)


def bar_chart(names: Sequence[str], values: Sequence[float], path: Path, xlabel: str, title: str = "") -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2))
    ax.barh(list(names), list(values), color="tab:blue")
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.3f}", va="center")
    ax.set_xlabel(xlabel)
    ax.set_xlim(0, 1.08)
    ax.invert_yaxis()
    ax.set_title(title)
    return save(fig, path)


def scatter(xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], path: Path, xlabel: str, ylabel: str,
            title: str = "", logx: bool = True) -> Path:
    """Labelled points, e.g. test accuracy against FLOPs per architecture."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(list(xs), list(ys), color="tab:blue")
    for x, y, label in zip(xs, ys, labels):
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return save(fig, path)


def overlay(series: dict[str, list[tuple[int, float]]], path: Path, ylabel: str, title: str = "") -> Path:
    """One line per run (label -> [(epoch, value)]) on shared axes, e.g. the validation accuracy of every
    experiment on a dataset."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, points in sorted(series.items()):
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker=".", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7, ncol=2)
    return save(fig, path)


def draw_detections(images: torch.Tensor, targets: torch.Tensor, detections: list[dict[str, torch.Tensor]],
                    path: Path, min_score: float = 0.3, cols: int = 4, title: str = "") -> Path:
    """Test images with the true boxes (green) and the predicted ones (red, class:score). images (N, 1, H, W),
    targets (N, K, 5) rows (label, x1, y1, x2, y2), label < 0 unused; detections scoring below ``min_score`` are
    not drawn."""
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
