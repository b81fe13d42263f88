"""Box operations of the detectors: IoU and non-maximum suppression, on ``(x1, y1, x2, y2)`` boxes.

Written here because torchvision.ops (the usual implementation) does not install beside this project's
torch build; tests check them against hand-computed boxes and a brute-force reference.
"""

from __future__ import annotations

import torch


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) -> (...)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of ``a`` (..., 4) and ``b`` (..., 4), broadcast against each other:
    element-wise for equal shapes, pairwise (n, m) for ``box_iou(a[:, None], b[None])``."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = box_area(a) + box_area(b) - inter
    return inter / union.clamp(min=1e-9)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices of the boxes (n, 4) kept by non-maximum suppression, highest score first (lecture 6):
    sort by score, select the best remaining box, remove the boxes overlapping it by more than
    ``iou_threshold``, repeat until none remain.

    Computed on the boxes' device without a per-box loop: box i (in score order) is kept iff no kept box
    before it overlaps it, a rule whose unique solution is reached by applying it to all boxes at once,
    starting from "all kept", until nothing changes -- at most as many rounds as the longest chain of
    suppressions, each one tensor operation and one comparison."""
    order = scores.argsort(descending=True)
    # earlier[j, i]: box j comes before box i and overlaps it by more than the threshold
    earlier = (box_iou(boxes[order][:, None], boxes[order][None]) > iou_threshold).triu(diagonal=1)
    keep = torch.ones(len(order), dtype=torch.bool, device=boxes.device)
    for _ in range(len(order)):
        new = ~(earlier & keep[:, None]).any(0)
        if torch.equal(new, keep):
            break
        keep = new
    return order[keep]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS within each label: boxes of different labels never suppress each other (shifting each label's
    boxes by its own offset, so they cannot overlap, makes one NMS call do every label)."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    offsets = labels.to(boxes) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def select_detections(boxes: torch.Tensor, class_scores: torch.Tensor, score_threshold: float, iou_threshold: float,
                      max_detections: int = 100, pre_nms: int = 300) -> list[dict[str, torch.Tensor]]:
    """A detector's final boxes: every (box, class) pair scoring above ``score_threshold``, the best
    ``pre_nms`` of them, NMS within each class, at most ``max_detections`` per image.

    boxes (N, M, 4) xyxy, class_scores (N, M, C) -> per image {"boxes": (k, 4), "scores": (k,), "labels": (k,)}.
    """
    out = []
    num_classes = class_scores.shape[-1]
    for b, s in zip(boxes, class_scores):
        flat = s.reshape(-1)  # (M * C,): box m, class c at m * C + c
        idx = (flat > score_threshold).nonzero().squeeze(1)
        idx = idx[flat[idx].argsort(descending=True)[:pre_nms]]
        box, label, score = b[idx // num_classes], idx % num_classes, flat[idx]
        keep = batched_nms(box, score, label, iou_threshold)[:max_detections]
        out.append({"boxes": box[keep], "scores": score[keep], "labels": label[keep]})
    return out
