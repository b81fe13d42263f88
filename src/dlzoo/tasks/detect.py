"""Detection task: one LightningModule for every detector network (dlzoo.models.detection).

The network computes its own loss (``net.loss``) and final boxes (``net.detect``); this task logs
``train/loss`` (and its parts), ``val/loss``, ``val/map50``, ``val/map`` per epoch and in test
``test/map50`` (mAP at IoU 0.5), ``test/map`` (COCO's mAP averaged over IoU 0.50:0.05:0.95),
``test/ap_<class>`` (AP@[.5:.95] per class), ``test/images_per_s`` (forward + decoding + NMS, batch as loaded).
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path
from typing import Callable

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn

from dlzoo.tasks.base import BuildContext, EvalOutputs, Task
from dlzoo.tasks.classify import ClassificationTask
from dlzoo.tasks.registry import register_task


def coco_map(detections: list[dict[str, torch.Tensor]], targets: list[torch.Tensor], num_classes: int) -> dict[str, float]:
    """mAP of per-image detections ({"boxes" xyxy, "scores", "labels"}) against targets ((K, 5) rows
    label, x1, y1, x2, y2; label < 0 unused) by pycocotools' COCOeval: ``map`` = AP@[.5:.95], ``map50`` =
    AP@0.5, ``ap_<c>`` = AP@[.5:.95] of class c (nan when the class has no ground truth).

    An adapter to plain COCO dicts: torchmetrics' MeanAveragePrecision (which wraps the same COCOeval)
    needs torchvision, which does not install beside this project's torch build."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for i, (det, tgt) in enumerate(zip(detections, targets)):
        images.append({"id": i})
        for label, x1, y1, x2, y2 in tgt[tgt[:, 0] >= 0].tolist():
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(label) + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
        for (x1, y1, x2, y2), score, label in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist()):
            results.append({"image_id": i, "category_id": int(label) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "score": score})
    keys = ["map", "map50", *(f"ap_{c}" for c in range(num_classes))]
    if not results:
        return dict.fromkeys(keys, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):  # COCO prints progress and its summary table
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": c + 1} for c in range(num_classes)]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"][:, :, :, 0, -1]  # (IoU thresholds, recall points, classes): all areas, 100 dets
    per_class = [p[p > -1].mean() if (p > -1).any() else float("nan") for p in np.moveaxis(precision, 2, 0)]
    return {"map": float(ev.stats[0]), "map50": float(ev.stats[1]), **{f"ap_{c}": float(v) for c, v in enumerate(per_class)}}


@register_task("detect")
class DetectionTask(Task, pl.LightningModule):
    # the figure a run of this task is ranked and reported by: COCO mAP@[.5:.95]
    score_key = "test/map"
    datamodule = "detection"

    @classmethod
    def from_config(cls, cfg, net: nn.Module, num_classes: int, context: BuildContext):
        from dlzoo.tasks.options import refuse_monitors, section, training_kwargs

        refuse_monitors(cfg, ("val/acc",), "set callbacks.model_checkpoint.monitor=val/map, or start from "
                        "experiment=digits_yolo")
        return cls(net, num_classes, **training_kwargs(cfg), **section(cfg, "detect"))

    def __init__(self, net: nn.Module, num_classes: int, optimizer: Callable, scheduler: Callable | None = None,
                 scheduler_interval: str = "epoch", weight_decay: float = 0.0, l1: float = 0.0, l2_penalty: float = 0.0,
                 score_threshold: float = 0.01, nms_iou: float = 0.5, max_detections: int = 100):
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self._outputs: tuple[list, list] = ([], [])  # (detections, targets) of the current eval epoch
        self._timing = [0.0, 0]  # seconds, images of test-time detection
        self.test_outputs: tuple[list, list] = ([], [])  # (detections, targets) of the last test epoch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def predict(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Final detections of a batch of images (no gradient)."""
        with torch.no_grad():
            return self.net.detect(x, self.hparams.score_threshold, self.hparams.nms_iou, self.hparams.max_detections)

    def training_step(self, batch, batch_idx):
        from dlzoo.training.optim import penalised

        x, targets = batch
        loss, parts = self.net.loss(x, targets)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x))
        self.log_dict({f"train/{k}_loss": v for k, v in parts.items()}, on_step=False, on_epoch=True, batch_size=len(x))
        return penalised(self, loss, self.net, self.hparams.l1, self.hparams.l2_penalty)

    def _eval_step(self, prefix: str, batch) -> None:
        x, targets = batch
        self.log(f"{prefix}/loss", self.net.loss(x, targets)[0], on_epoch=True, prog_bar=True, batch_size=len(x))
        started = time.perf_counter()
        dets = self.predict(x)
        self._timing[0] += time.perf_counter() - started
        self._timing[1] += len(x)
        self._outputs[0].extend({k: v.cpu() for k, v in d.items()} for d in dets)
        self._outputs[1].extend(targets.cpu())

    def _log_map(self, prefix: str, per_class: bool) -> None:
        result = coco_map(*self._outputs, num_classes=self.net.num_classes)
        self.log(f"{prefix}/map50", result["map50"], prog_bar=True)
        self.log(f"{prefix}/map", result["map"], prog_bar=True)
        if per_class:
            self.log_dict({f"{prefix}/{k}": v for k, v in result.items() if k.startswith("ap_")})
            self.log(f"{prefix}/images_per_s", self._timing[1] / max(self._timing[0], 1e-9))
            self.log(f"{prefix}/num_samples", float(self._timing[1]))
        if prefix == "test":  # kept for the test evaluation's plots (no second pass over the split)
            self.test_outputs = self._outputs
        self._outputs = ([], [])
        self._timing = [0.0, 0]

    def validation_step(self, batch, batch_idx):
        self._eval_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._log_map("val", per_class=False)

    def test_step(self, batch, batch_idx):
        self._eval_step("test", batch)

    def on_test_epoch_end(self) -> None:
        self._log_map("test", per_class=True)

    def evaluation_outputs(self, dm, loader, split: str, out_dir: Path, title: str, min_score: float = 0.3,
                           n_drawn: int = 16) -> EvalOutputs:
        """From the detections of the test pass just run: (true, predicted) class pairs for a confusion plot --
        each detection scoring at least ``min_score``, best first, is matched to the unmatched true box it
        overlaps most (IoU >= 0.5, any class); unmatched detections count as (background, class), missed boxes
        as (class, background) -- and a plot of the first ``n_drawn`` images with their true and predicted boxes
        (its path as ``detections_plot``, which the report shows)."""
        from dlzoo.models.boxes import box_iou
        from dlzoo.report.plots import draw_detections

        detections, targets = self.test_outputs
        x = next(iter(loader))[0][:n_drawn]  # the first images of the split (one batch)
        drawn = draw_detections(x, torch.stack(targets[:len(x)]), detections[:len(x)],
                                out_dir / "plots" / "detections.png", min_score,
                                title=f"{title}: {split} (green: true, red: detected)")
        actual, predicted = [], []
        for det, tgt in zip(detections, targets):
            tgt = tgt[tgt[:, 0] >= 0]
            sure = det["scores"] >= min_score
            boxes, labels = det["boxes"][sure], det["labels"][sure]  # already sorted by score
            free = torch.ones(len(tgt))  # 1 = true box not matched yet
            iou = box_iou(boxes[:, None], tgt[None, :, 1:]) if len(tgt) else None  # (detections, true boxes)
            for i, label in enumerate(labels.tolist()):
                j = int((iou[i] * free).argmax()) if iou is not None else -1
                if j >= 0 and iou[i, j] * free[j] >= 0.5:
                    free[j] = 0.0
                    actual.append(str(int(tgt[j, 0])))
                else:
                    actual.append("background")
                predicted.append(str(label))
            for j in free.nonzero().squeeze(1).tolist():
                actual.append(str(int(tgt[j, 0])))
                predicted.append("background")
        return EvalOutputs(np.array(actual), np.array(predicted), extra={"detections_plot": str(drawn)})

    # same optimizer/scheduler wiring as classification (decay groups, partial constructors)
    configure_optimizers = ClassificationTask.configure_optimizers
