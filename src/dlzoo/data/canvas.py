"""Synthetic detection canvases, generated from a seed (numpy only: the prepare stage imports it).

Digits (8x8 glyphs of scikit-learn's set, intensities in [0, 1]) are upscaled to a random size and pasted
at random positions on a black square canvas, ``min_objects``-``max_objects`` per image. Each object's box
is the tight box around its ink (pixels above ``INK`` after upscaling), in pixel coordinates
``(x1, y1, x2, y2)`` with ``x2``/``y2`` exclusive; a new digit is placed where its box overlaps no earlier
box by more than ``max_iou`` (retried, then dropped), and overlapping ink is merged with ``max``.
"""

from __future__ import annotations

import numpy as np

INK = 0.25  # share of the glyph's peak intensity that counts as ink for the tight box
PAD = -1  # label of an unused object slot
SIZES = {"train": 4000, "val": 500, "test": 1000}  # canvases per split of the prepared set


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (4,) box with (n, 4) boxes, xyxy."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(box) + area(boxes) - inter)


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) linear-interpolation matrix mapping corners to corners (scipy.ndimage.zoom's order=1
    grid): ``A @ g @ A.T`` resizes a square glyph; two tiny matmuls instead of a zoom call per digit."""
    pos = np.linspace(0.0, n_in - 1, n_out)
    lo = np.minimum(np.floor(pos).astype(int), n_in - 2)
    frac = pos - lo
    a = np.zeros((n_out, n_in))
    a[np.arange(n_out), lo] = 1.0 - frac
    a[np.arange(n_out), lo + 1] = frac
    return a


def make_canvases(glyphs: np.ndarray, glyph_labels: np.ndarray, n: int, rng: np.random.Generator, size: int = 64,
                  min_objects: int = 1, max_objects: int = 4, scale: tuple[int, int] = (12, 28),
                  max_iou: float = 0.1, tries: int = 20) -> dict[str, np.ndarray]:
    """``n`` canvases: ``x`` (n, size, size) uint8, ``boxes`` (n, max_objects, 4) float32 (zeros in unused
    slots), ``labels`` (n, max_objects) int64 (PAD in unused slots)."""
    resize = {s: _resize_matrix(glyphs.shape[-1], s) for s in range(scale[0], scale[1] + 1)}
    x = np.zeros((n, size, size), dtype=np.float32)
    boxes = np.zeros((n, max_objects, 4), dtype=np.float32)
    labels = np.full((n, max_objects), PAD, dtype=np.int64)
    counts = rng.integers(min_objects, max_objects + 1, size=n)
    for i, count in enumerate(counts):
        k = 0
        for _ in range(count):
            g = int(rng.integers(len(glyphs)))
            s = int(rng.integers(scale[0], scale[1] + 1))
            patch = resize[s] @ glyphs[g] @ resize[s].T  # (s, s), bilinear
            rows, cols = np.nonzero(patch > INK * patch.max())
            tight = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=np.float32)
            for _ in range(tries):
                ox, oy = (int(v) for v in rng.integers(0, size - s + 1, size=2))
                box = tight + np.array([ox, oy, ox, oy], dtype=np.float32)
                if k == 0 or _iou(box, boxes[i, :k]).max() <= max_iou:
                    break
            else:
                continue  # no room: drop this object
            x[i, oy:oy + s, ox:ox + s] = np.maximum(x[i, oy:oy + s, ox:ox + s], patch)
            boxes[i, k], labels[i, k] = box, glyph_labels[g]
            k += 1
    return {"x": np.round(x * 255).astype(np.uint8), "boxes": boxes, "labels": labels}
