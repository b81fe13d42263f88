"""Object detectors of lecture 6: a YOLO-v1-style one-stage detector.

A detector is an ``nn.Module`` whose ``forward`` returns raw outputs and which also has
``loss(out, targets) -> (loss, {part: value})`` and ``detect(out, score_threshold, iou_threshold,
max_detections) -> [{"boxes", "scores", "labels"} per image]``; the ``detect`` task drives both.
``targets`` are (N, K, 5) rows ``(label, x1, y1, x2, y2)`` in input pixels, label -1 in unused slots.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from dlzoo.models.boxes import box_iou, select_detections
from dlzoo.models.layers import ActSpec, ConvBNAct, act_layer, image_shape, scaled
from dlzoo.models.registry import register_model


# ---- YOLO-v1 target encoding / decoding ------------------------------------------------------------------

def encode_targets(targets: torch.Tensor, grid: int, image_size: int) -> tuple[torch.Tensor, ...]:
    """Each object goes to the grid cell holding its centre: ``obj`` (N, S, S) bool, ``box`` (N, S, S, 4)
    as (x, y) offset of the centre inside the cell in [0, 1) and (w, h) relative to the image, ``cls``
    (N, S, S) long. Like YOLO v1, a cell holds one object: when two centres share a cell, one of them wins."""
    n = targets.shape[0]
    obj = torch.zeros(n, grid, grid, dtype=torch.bool, device=targets.device)
    box = torch.zeros(n, grid, grid, 4, device=targets.device)
    cls = torch.zeros(n, grid, grid, dtype=torch.long, device=targets.device)
    img, slot = (targets[..., 0] >= 0).nonzero(as_tuple=True)
    t = targets[img, slot]  # (M, 5)
    xyxy = t[:, 1:] / image_size
    cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2 * grid, (xyxy[:, 1] + xyxy[:, 3]) / 2 * grid  # in cells
    col, row = cx.long().clamp(0, grid - 1), cy.long().clamp(0, grid - 1)
    box[img, row, col] = torch.stack([cx - col, cy - row, xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]], -1)
    obj[img, row, col] = True
    cls[img, row, col] = t[:, 0].long()
    return obj, box, cls


def cell_to_xyxy(xywh: torch.Tensor) -> torch.Tensor:
    """(N, S, S, ..., 4) boxes in cell form (see ``encode_targets``) -> image-relative (x1, y1, x2, y2)."""
    s, extra = xywh.shape[1], xywh.dim() - 4
    r = torch.arange(s, dtype=xywh.dtype, device=xywh.device)
    col, row = r.view(1, 1, s, *[1] * extra), r.view(1, s, 1, *[1] * extra)
    cx, cy = (xywh[..., 0] + col) / s, (xywh[..., 1] + row) / s
    w, h = xywh[..., 2], xywh[..., 3]
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


# ---- the network -----------------------------------------------------------------------------------------

class YOLOv1(nn.Module):
    """S x S grid, B boxes per cell: output (N, S, S, B*5 + C), per cell B x (x, y, w, h, confidence) then C
    class scores (Redmon et al. 2016, scaled down: a 5-conv backbone instead of 24 convs + 2 FC layers).

    Departures from the paper: the box and confidence outputs go through a sigmoid (the paper leaves them
    linear), which keeps them in range from the first step on a small net; class probabilities are a
    softmax, regressed with the squared error of the lecture's loss (the paper regresses raw outputs);
    the head is a 1x1 convolution instead of fully connected layers (the receptive field of the last
    layer already spans the digits).
    """

    def __init__(self, in_chans: int, num_classes: int, image_size: int, grid: int = 8, boxes: int = 2,
                 width: float = 1.0, batchnorm: bool = True, activation: ActSpec = "leaky_relu",
                 lambda_coord: float = 5.0, lambda_noobj: float = 0.5, sqrt_wh: bool = True):
        super().__init__()
        self.num_classes, self.image_size, self.grid, self.boxes = num_classes, image_size, grid, boxes
        self.lambda_coord, self.lambda_noobj, self.sqrt_wh = lambda_coord, lambda_noobj, sqrt_wh
        act = act_layer(activation)
        stages = int(math.log2(image_size // grid))  # 2x2 max-pools from the image down to the grid
        chans = [scaled(min(16 * 2 ** k, 128), width) for k in range(stages + 1)]  # 16, 32, 64, 128 for 64 -> 8
        layers: list[nn.Module] = [ConvBNAct(in_chans, chans[0], batchnorm=batchnorm, act=act)]
        for c_in, c_out in zip(chans, chans[1:]):
            layers += [nn.MaxPool2d(2), ConvBNAct(c_in, c_out, batchnorm=batchnorm, act=act)]
        layers.append(ConvBNAct(chans[-1], chans[-1], batchnorm=batchnorm, act=act))
        self.features = nn.Sequential(*layers)  # (N, c, S, S)
        self.head = nn.Conv2d(chans[-1], boxes * 5 + num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C_in, H, W) -> (N, S, S, B*5 + C)
        return self.head(self.features(x)).permute(0, 2, 3, 1)

    def _split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, s = out.shape[:2]
        return out[..., : self.boxes * 5].reshape(n, s, s, self.boxes, 5).sigmoid(), out[..., self.boxes * 5:]

    def loss(self, out: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The lecture's YOLO loss, summed over cells and boxes and averaged over the batch:
        λ_coord Σ 1obj_ij [(x-x̂)² + (y-ŷ)² + (√w-√ŵ)² + (√h-√ĥ)²] + Σ 1obj_ij (C-Ĉ)² + λ_noobj Σ 1noobj_ij C²
        + Σ_i 1obj_i Σ_c (p(c)-p̂(c))². The predictor "responsible" for an object (1obj_ij) is the one of its
        cell's B boxes with the highest IoU with it; its confidence target Ĉ is that IoU (as in the paper);
        every other predictor counts as no-object. ``sqrt_wh=False`` regresses w, h themselves (the lecture's
        notes) instead of their square roots (the paper's)."""
        pred, logits = self._split(out)  # (N, S, S, B, 5), (N, S, S, C)
        obj, tbox, tcls = encode_targets(targets, self.grid, self.image_size)
        iou = box_iou(cell_to_xyxy(pred[..., :4]), cell_to_xyxy(tbox).unsqueeze(3)).detach()  # (N, S, S, B)
        resp = F.one_hot(iou.argmax(-1), self.boxes).bool() & obj.unsqueeze(-1)  # (N, S, S, B)
        t = tbox.unsqueeze(3)  # (N, S, S, 1, 4)
        size = (lambda v: v.clamp(min=1e-9).sqrt()) if self.sqrt_wh else (lambda v: v)  # noqa: E731
        coord = ((pred[..., :2] - t[..., :2]) ** 2).sum(-1) + ((size(pred[..., 2:4]) - size(t[..., 2:4])) ** 2).sum(-1)
        conf = pred[..., 4]
        probs = logits.softmax(-1)
        parts = {
            "coord": self.lambda_coord * (coord * resp).sum(),
            "obj": ((conf - iou) ** 2 * resp).sum(),
            "noobj": self.lambda_noobj * (conf ** 2 * ~resp).sum(),
            "cls": (((probs - F.one_hot(tcls, self.num_classes)) ** 2).sum(-1) * obj).sum(),
        }
        parts = {k: v / out.shape[0] for k, v in parts.items()}
        return sum(parts.values()), parts

    def detect(self, out: torch.Tensor, score_threshold: float = 0.01, iou_threshold: float = 0.5,
               max_detections: int = 100) -> list[dict[str, torch.Tensor]]:
        """Boxes in input pixels scored by class-specific confidence = confidence x P(class | object) (the
        paper's test-time score), then per-class NMS."""
        pred, logits = self._split(out)
        n = out.shape[0]
        boxes = (cell_to_xyxy(pred[..., :4]).clamp(0, 1) * self.image_size).reshape(n, -1, 4)  # (N, S*S*B, 4)
        scores = pred[..., 4:5] * logits.softmax(-1).unsqueeze(3)  # (N, S, S, B, C)
        return select_detections(boxes, scores.reshape(n, boxes.shape[1], -1), score_threshold, iou_threshold,
                                 max_detections)


@register_model()
def yolo(input_shape, num_classes, grid=8, boxes=2, width=1.0, batchnorm=True, activation="leaky_relu",
         lambda_coord=5.0, lambda_noobj=0.5, sqrt_wh=True) -> YOLOv1:
    from dlzoo.errors import ConfigError

    c, h, w = image_shape("yolo", input_shape, min_size=grid)
    ratio = h // grid
    if h != w or h % grid or ratio & (ratio - 1):
        raise ConfigError(f"yolo takes square images whose side is the grid ({grid}) times a power of two, "
                          f"got {tuple(input_shape)}: set model.grid accordingly")
    return YOLOv1(c, num_classes, h, grid, boxes, width, batchnorm, activation, lambda_coord, lambda_noobj, sqrt_wh)
