"""Object detectors of lecture 6: a YOLO-v1-style one-stage detector and an R-CNN-style two-stage one.

A detector is an ``nn.Module`` whose ``forward`` returns raw outputs and which also has
``loss(x, targets) -> (loss, {part: value})`` and ``detect(x, score_threshold, iou_threshold,
max_detections) -> [{"boxes", "scores", "labels"} per image]`` on images x; the ``detect`` task drives both.
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

    def loss(self, x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.loss_from_output(self(x), targets)

    def detect(self, x: torch.Tensor, score_threshold: float = 0.01, iou_threshold: float = 0.5,
               max_detections: int = 100) -> list[dict[str, torch.Tensor]]:
        return self.decode(self(x), score_threshold, iou_threshold, max_detections)

    def loss_from_output(self, out: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
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

    def decode(self, out: torch.Tensor, score_threshold: float = 0.01, iou_threshold: float = 0.5,
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


# ---- R-CNN-style two-stage detector ----------------------------------------------------------------------

def sliding_windows(image_size: int, heights: tuple[int, ...], aspects: tuple[float, ...], stride: int) -> torch.Tensor:
    """Region proposals: every window of each height x aspect (width / height) at every ``stride`` pixels
    that fits inside the image, (P, 4) xyxy."""
    out = []
    for h in heights:
        for a in aspects:
            w = max(1, round(h * a))
            xs = torch.arange(0, image_size - w + 1, stride, dtype=torch.float32)
            ys = torch.arange(0, image_size - h + 1, stride, dtype=torch.float32)
            y, x = torch.meshgrid(ys, xs, indexing="ij")
            out.append(torch.stack([x, y, x + w, y + h], -1).reshape(-1, 4))
    return torch.cat(out)


def crop_regions(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Warp each region to ``size`` x ``size`` (R-CNN's warped region, bilinear): images (N, C, H, W), boxes
    (N, M, 4) xyxy in pixels -> (N*M, C, size, size)."""
    n, m = boxes.shape[:2]
    h, w = images.shape[-2:]
    cx, cy = (boxes[..., 0] + boxes[..., 2]) / w - 1, (boxes[..., 1] + boxes[..., 3]) / h - 1  # in [-1, 1]
    sx, sy = (boxes[..., 2] - boxes[..., 0]) / w, (boxes[..., 3] - boxes[..., 1]) / h
    zero = torch.zeros_like(cx)
    theta = torch.stack([sx, zero, cx, zero, sy, cy], -1).reshape(n * m, 2, 3)
    grid = F.affine_grid(theta, [n * m, 1, size, size], align_corners=False)  # (N*M, size, size, 2)
    # the regions of one image stacked into one tall sampling grid: one grid_sample per image, no copies
    out = F.grid_sample(images, grid.reshape(n, m * size, size, 2), mode="bilinear", align_corners=False)
    c = images.shape[1]
    return out.reshape(n, c, m, size, size).transpose(1, 2).reshape(n * m, c, size, size)


def encode_deltas(gt: torch.Tensor, proposals: torch.Tensor) -> torch.Tensor:
    """R-CNN's box-regression targets (Girshick et al. 2014, appendix C): (dx, dy) = centre shift over the
    proposal's size, (dw, dh) = log size ratio. (..., 4) xyxy each -> (..., 4)."""
    pw, ph = proposals[..., 2] - proposals[..., 0], proposals[..., 3] - proposals[..., 1]
    gw, gh = gt[..., 2] - gt[..., 0], gt[..., 3] - gt[..., 1]
    dx = ((gt[..., 0] + gt[..., 2]) - (proposals[..., 0] + proposals[..., 2])) / 2 / pw
    dy = ((gt[..., 1] + gt[..., 3]) - (proposals[..., 1] + proposals[..., 3])) / 2 / ph
    return torch.stack([dx, dy, torch.log(gw / pw), torch.log(gh / ph)], -1)


def decode_deltas(deltas: torch.Tensor, proposals: torch.Tensor) -> torch.Tensor:
    """Inverse of ``encode_deltas``."""
    pw, ph = proposals[..., 2] - proposals[..., 0], proposals[..., 3] - proposals[..., 1]
    cx = (proposals[..., 0] + proposals[..., 2]) / 2 + deltas[..., 0] * pw
    cy = (proposals[..., 1] + proposals[..., 3]) / 2 + deltas[..., 1] * ph
    w, h = pw * deltas[..., 2].clamp(max=4).exp(), ph * deltas[..., 3].clamp(max=4).exp()
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


class RCNN(nn.Module):
    """Region proposals (sliding windows) -> each region warped to ``crop`` x ``crop`` -> a small CNN with
    C + 1 class scores (the last one is background) and a box regression -> per-class NMS.

    Departures from R-CNN (Girshick et al. 2014): sliding windows instead of selective search (the canvases
    have no colour or texture for it to group); one network trained end to end with softmax cross-entropy
    and a smooth-L1 box loss (Fast R-CNN's multi-task loss) instead of fine-tuning + per-class SVMs +
    separate ridge regressors; class-agnostic box regression. Like R-CNN, it runs the CNN once per
    proposal, which is what makes two-stage detectors of this kind slow.
    ``forward`` returns (N, P, C + 1 + 4): class logits and box deltas of every proposal.
    """

    def __init__(self, in_chans: int, num_classes: int, image_size: int, crop: int = 12,
                 heights: tuple[int, ...] = (14, 22), aspects: tuple[float, ...] = (0.5, 0.85), stride: int = 4,
                 width: float = 1.0, batchnorm: bool = True, activation: ActSpec = "relu", samples: int = 32,
                 positive_fraction: float = 0.25, positive_iou: float = 0.5, negative_iou: float = 0.3,
                 lambda_box: float = 1.0, chunk: int = 8192):
        super().__init__()
        self.num_classes, self.image_size, self.crop, self.chunk = num_classes, image_size, crop, chunk
        self.samples, self.positive_fraction, self.lambda_box = samples, positive_fraction, lambda_box
        self.positive_iou, self.negative_iou = positive_iou, negative_iou
        self.register_buffer("proposals", sliding_windows(image_size, tuple(heights), tuple(aspects), stride), persistent=False)
        act = act_layer(activation)
        c1, c2 = scaled(16, width), scaled(32, width)
        self.features = nn.Sequential(  # (M, C, crop, crop) -> (M, c2, crop / 4, crop / 4)
            ConvBNAct(in_chans, c1, batchnorm=batchnorm, act=act), nn.MaxPool2d(2),
            ConvBNAct(c1, c2, batchnorm=batchnorm, act=act), nn.MaxPool2d(2),
            ConvBNAct(c2, c2, batchnorm=batchnorm, act=act), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(c2 * (crop // 4) ** 2, 128), act())
        self.cls = nn.Linear(128, num_classes + 1)
        self.box = nn.Linear(128, 4)

    def classify(self, crops: torch.Tensor) -> torch.Tensor:  # (M, C, crop, crop) -> (M, C + 1 + 4)
        h = self.fc(self.features(crops))
        return torch.cat([self.cls(h), self.box(h)], -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, P, num_classes + 1 + 4)
        n, p = len(x), len(self.proposals)
        per = max(1, self.chunk // p)  # images per chunk: bounds the memory of the warped regions
        outs = [self.classify(crop_regions(x[i:i + per], self.proposals.expand(len(x[i:i + per]), p, 4), self.crop))
                for i in range(0, n, per)]
        return torch.cat(outs).reshape(n, p, -1)

    def _sample(self, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training regions per image: up to ``positive_fraction`` of ``samples`` proposals overlapping a true
        box by >= positive_iou (labelled with its class, regressed to it), the rest background proposals
        (IoU < negative_iou with every true box). -> indices (N, samples), labels (N, samples) with C =
        background, matched true boxes (N, samples, 4)."""
        valid = targets[..., 0] >= 0  # (N, K)
        iou = box_iou(self.proposals[None, :, None], targets[:, None, :, 1:])  # (N, P, K)
        iou = iou.masked_fill(~valid[:, None], -1.0)
        best, match = iou.max(-1)  # (N, P)
        n_pos = int(self.samples * self.positive_fraction)
        rows = []
        for b in best:  # (P,) per image, in a random order: positives first, then background
            perm = torch.randperm(len(b), device=b.device)
            rows.append(torch.cat([perm[b[perm] >= self.positive_iou][:n_pos], perm[b[perm] < self.negative_iou]])[: self.samples])
        idx = torch.stack(rows)  # (N, samples): a canvas of 1-4 digits leaves hundreds of background windows
        positive = best.gather(1, idx) >= self.positive_iou
        labels = torch.where(positive, targets[..., 0].long().gather(1, match.gather(1, idx)), self.num_classes)
        gt = targets[..., 1:].gather(1, match.gather(1, idx)[..., None].expand(-1, -1, 4))
        return idx, labels, gt

    def loss(self, x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        idx, labels, gt = self._sample(targets)
        regions = self.proposals[idx]  # (N, samples, 4)
        out = self.classify(crop_regions(x, regions, self.crop)).reshape(*idx.shape, -1)
        logits, deltas = out[..., : self.num_classes + 1], out[..., self.num_classes + 1:]
        pos = labels < self.num_classes
        box = F.smooth_l1_loss(deltas[pos], encode_deltas(gt[pos], regions[pos]), reduction="sum") / max(1, int(pos.sum()))
        parts = {"cls": F.cross_entropy(logits.flatten(0, 1), labels.flatten()), "box": self.lambda_box * box}
        return sum(parts.values()), parts

    def detect(self, x: torch.Tensor, score_threshold: float = 0.01, iou_threshold: float = 0.5,
               max_detections: int = 100) -> list[dict[str, torch.Tensor]]:
        out = self(x)
        scores = out[..., : self.num_classes + 1].softmax(-1)[..., : self.num_classes]  # (N, P, C): background dropped
        boxes = decode_deltas(out[..., self.num_classes + 1:], self.proposals).clamp(0, self.image_size)
        return select_detections(boxes, scores, score_threshold, iou_threshold, max_detections)


@register_model()
def rcnn(input_shape, num_classes, crop=12, heights=(14, 22), aspects=(0.5, 0.85), stride=4, width=1.0,
         batchnorm=True, activation="relu", samples=32, positive_fraction=0.25, positive_iou=0.5, negative_iou=0.3,
         lambda_box=1.0) -> RCNN:
    from dlzoo.errors import ConfigError

    c, h, w = image_shape("rcnn", input_shape, min_size=max(heights))
    if h != w or crop % 4:
        raise ConfigError(f"rcnn takes square images and a crop divisible by 4, got {tuple(input_shape)}, crop={crop}")
    return RCNN(c, num_classes, h, crop, tuple(heights), tuple(aspects), stride, width, batchnorm, activation, samples,
                positive_fraction, positive_iou, negative_iou, lambda_box)
