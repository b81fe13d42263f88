"""Object detection: box ops, the YOLO loss and decoding, the mAP adapter, the canvases, the bar."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import FAST, ROOT, compose, nms_brute_force
from dlzoo.data.canvas import PAD, make_canvases
from dlzoo.models import get_model
from dlzoo.models.boxes import batched_nms, box_iou, nms
from dlzoo.models.detection import encode_targets
from dlzoo.tasks.detect import coco_map

GLYPHS = np.load(ROOT / "data/digits/x.npy")[:200] / 16.0
GLYPH_LABELS = np.load(ROOT / "data/digits/y.npy")[:200]


def canvases(n: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    return make_canvases(GLYPHS, GLYPH_LABELS, n, np.random.default_rng(seed))


def targets_of(c: dict[str, np.ndarray]) -> torch.Tensor:
    from dlzoo.data.detection import to_tensors

    return to_tensors(c)[1]  # (N, K, 5)


# ---- IoU and NMS ---------------------------------------------------------------------------------------------

def test_box_iou_on_hand_computed_boxes():
    a = torch.tensor([[0.0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 4, 4], [0, 0, 2, 2], [0, 0, 3, 1]])
    b = torch.tensor([[1.0, 1, 3, 3], [0, 0, 2, 2], [1, 1, 3, 3], [2, 0, 4, 2], [1, 0, 2, 5]])
    # overlap 1 of union 7; identical; inner box 4 of 16; touching edges; 1 of 3 + 5 - 1
    expected = torch.tensor([1 / 7, 1.0, 0.25, 0.0, 1 / 7])
    assert torch.allclose(box_iou(a, b), expected)
    pairwise = box_iou(a[:, None], b[None])  # (5, 5)
    assert pairwise.shape == (5, 5) and torch.allclose(pairwise.diagonal(), expected)
    assert torch.allclose(pairwise, box_iou(b[:, None], a[None]).T)  # symmetric


def test_nms_keeps_the_right_boxes_on_a_constructed_case():
    # A and B overlap by 70/130 > 0.5: B goes. B and C overlap likewise, but a removed box removes nothing,
    # and A-C overlap 40/160: C stays. D is far away and stays; E sits inside A (IoU 0.81) and goes.
    boxes = torch.tensor([[0.0, 0, 10, 10], [3, 0, 13, 10], [6, 0, 16, 10], [30, 30, 40, 40], [0, 0, 9, 9]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.3, 0.85])
    assert nms(boxes, scores, 0.5).tolist() == [0, 2, 3]
    assert nms(boxes, scores, 0.9).tolist() == [0, 4, 1, 2, 3]  # nothing overlaps that much: sorted by score
    labels = torch.tensor([0, 1, 0, 0, 0])
    assert sorted(batched_nms(boxes, scores, labels, 0.5).tolist()) == [0, 1, 2, 3]  # B has its own class now


@pytest.mark.parametrize("thr", [0.1, 0.3, 0.5, 0.7])
def test_nms_matches_a_brute_force_reference(thr):
    g = torch.Generator().manual_seed(int(thr * 10))
    xy = torch.rand(200, 2, generator=g) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(200, 2, generator=g) * 15], 1)
    scores = torch.rand(200, generator=g)
    keep = nms(boxes, scores, thr).tolist()
    assert keep == nms_brute_force(boxes.tolist(), scores.tolist(), thr)
    assert 1 < len(keep) < 200


# ---- YOLO: loss, decoding ------------------------------------------------------------------------------------

def yolo_net(**kw):
    return get_model("yolo", input_shape=(1, 64, 64), num_classes=10, **kw)


def perfect_output(net, targets: torch.Tensor, error: float = 0.0) -> torch.Tensor:
    """The raw output (N, S, S, B*5 + C) that predicts ``targets`` exactly (sigmoid/softmax saturated):
    predictor 0 of each object's cell holds its box (``error`` x too wide) with confidence 1, every other
    confidence is 0."""
    s, b = net.grid, net.boxes
    obj, box, cls = encode_targets(targets, s, net.image_size)
    out = torch.full((len(targets), s, s, b * 5 + net.num_classes), -30.0)
    box = box.clone()
    box[..., 2] *= 1 + error
    out[..., :4] = torch.logit(box.clamp(1e-7, 1 - 1e-7))
    out[..., 4] = torch.where(obj, 30.0, -30.0)
    out[..., b * 5:] = torch.where(torch.nn.functional.one_hot(cls, net.num_classes).bool(), 30.0, -30.0)
    return out


def test_yolo_output_layout():
    net = yolo_net(grid=8, boxes=3)
    assert net(torch.rand(2, 1, 64, 64)).shape == (2, 8, 8, 3 * 5 + 10)
    assert 200_000 < sum(p.numel() for p in yolo_net().parameters()) < 300_000  # the issue's ~250k probe


def test_yolo_loss_is_zero_for_a_perfect_prediction_and_grows_with_box_error():
    net = yolo_net()
    targets = targets_of(canvases(8))
    loss, parts = net.loss_from_output(perfect_output(net, targets), targets)
    assert loss.item() < 1e-5, parts
    losses = [net.loss_from_output(perfect_output(net, targets, error), targets)[0].item() for error in (0.05, 0.1, 0.2, 0.4)]
    assert losses[0] > 1e-3 and all(a < b for a, b in zip(losses, losses[1:])), losses
    # a wrong class and a missed object count too
    wrong = perfect_output(net, targets)
    wrong[..., 10:] = -wrong[..., 10:]
    assert net.loss_from_output(wrong, targets)[1]["cls"] > 1.0


def test_yolo_decoding_recovers_the_encoded_targets():
    net = yolo_net()
    c = canvases(16)
    targets = targets_of(c)
    dets = net.decode(perfect_output(net, targets), score_threshold=0.5)
    for det, t in zip(dets, targets):
        t = t[t[:, 0] >= 0]
        order = det["boxes"][:, 0].argsort()
        t = t[t[:, 1].argsort()]
        assert torch.allclose(det["boxes"][order], t[:, 1:], atol=1e-3)
        assert det["labels"][order].tolist() == t[:, 0].long().tolist()
        assert (det["scores"] > 0.99).all()


def test_yolo_learns_to_overfit_a_small_batch():
    torch.manual_seed(0)
    net = yolo_net()
    x = torch.from_numpy(canvases(4)["x"]).float().div(255).unsqueeze(1)
    targets = targets_of(canvases(4))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        loss, _ = net.loss(x, targets)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first


# ---- R-CNN: proposals, warped regions, box regression, sampling ---------------------------------------------

def test_rcnn_regions_deltas_and_training_samples():
    from dlzoo.models.detection import crop_regions, decode_deltas, encode_deltas

    x = torch.from_numpy(canvases(4)["x"]).float().div(255).unsqueeze(1)
    # a 12x12 region warped to 12x12 is the region itself; a 24x24 one is its 2x2 average (bilinear, centred)
    regions = torch.tensor([[8.0, 4, 20, 16], [0, 0, 24, 24]]).expand(4, 2, 4)
    crops = crop_regions(x, regions, 12)  # (8, 1, 12, 12)
    assert torch.allclose(crops[0, 0], x[0, 0, 4:16, 8:20], atol=1e-5)
    assert torch.allclose(crops[1, 0], torch.nn.functional.avg_pool2d(x[:1, :, :24, :24], 2)[0, 0], atol=1e-5)
    gt = torch.tensor([[10.0, 5, 18, 25], [30, 30, 40, 44]])
    proposals = torch.tensor([[8.0, 4, 20, 16], [28, 32, 42, 40]])
    assert torch.allclose(decode_deltas(encode_deltas(gt, proposals), proposals), gt, atol=1e-5)

    net = get_model("rcnn", input_shape=(1, 64, 64), num_classes=10, samples=32, positive_fraction=0.25)
    targets = targets_of(canvases(4))
    torch.manual_seed(0)
    idx, labels, matched = net._sample(targets)
    assert idx.shape == labels.shape == (4, 32)
    iou = box_iou(net.proposals[idx], matched)
    pos = labels < 10
    assert 0 < pos.sum(1).max() <= 8 and (iou[pos] >= 0.5).all()
    assert all(set(l[p].tolist()) <= set(t[t[:, 0] >= 0, 0].long().tolist()) for l, p, t in zip(labels, pos, targets))
    best = box_iou(net.proposals[idx][:, :, None], targets[:, None, :, 1:]).masked_fill(targets[:, None, :, 0] < 0, 0)
    assert (best.amax(-1)[~pos] < 0.3).all()  # background regions overlap no digit much
    loss, parts = net.loss(x, targets)
    assert set(parts) == {"cls", "box"} and loss.item() > 0
    dets = net.eval().detect(x[:1], score_threshold=0.0, max_detections=7)
    assert len(dets[0]["boxes"]) == 7 and (dets[0]["boxes"] >= 0).all() and (dets[0]["boxes"] <= 64).all()


# ---- mAP -----------------------------------------------------------------------------------------------------

def _as_detections(targets: torch.Tensor, shift: float = 0.0) -> list[dict[str, torch.Tensor]]:
    out = []
    for t in targets:
        t = t[t[:, 0] >= 0]
        boxes = t[:, 1:] + torch.tensor([shift, 0.0, shift, 0.0])
        out.append({"boxes": boxes, "scores": torch.ones(len(t)), "labels": t[:, 0].long()})
    return out


def test_map_adapter_is_one_for_perfect_detections_and_falls_with_shifted_boxes():
    targets = targets_of(canvases(40))
    perfect = coco_map(_as_detections(targets), list(targets), 10)
    assert perfect["map"] == pytest.approx(1.0) and perfect["map50"] == pytest.approx(1.0)
    present = set(targets[..., 0][targets[..., 0] >= 0].long().tolist())
    assert all(perfect[f"ap_{c}"] == pytest.approx(1.0) for c in present)
    small = coco_map(_as_detections(targets, 1.0), list(targets), 10)
    large = coco_map(_as_detections(targets, 4.0), list(targets), 10)
    assert small["map"] < 0.9 and small["map50"] == pytest.approx(1.0)  # a 1-pixel shift fails only strict IoUs
    assert large["map"] < small["map"] and large["map50"] < 1.0
    assert coco_map([{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}]
                    * len(targets), list(targets), 10)["map"] == 0.0


# ---- data ----------------------------------------------------------------------------------------------------

def test_canvases_are_seeded_and_boxes_hold_the_ink():
    a, b, other = canvases(50, seed=1), canvases(50, seed=1), canvases(50, seed=2)
    assert all(np.array_equal(a[k], b[k]) for k in a) and not np.array_equal(a["x"], other["x"])
    n = (a["labels"] != PAD).sum(1)
    assert n.min() >= 1 and n.max() <= 4 and len(set(n.tolist())) > 2
    for img, boxes, labels in zip(a["x"], a["boxes"], a["labels"]):
        mask = np.zeros_like(img, dtype=bool)
        for x1, y1, x2, y2 in boxes[labels != PAD].astype(int):
            assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64 and img[y1:y2, x1:x2].max() > 100
            mask[y1:y2, x1:x2] = True
        assert img[~mask].max() < 0.25 * 255 + 1  # no ink outside the boxes


def test_prepared_detection_splits_and_fresh_canvases(splits_dir):
    from dlzoo.data.detection import DetectionDataModule, FreshCanvases

    dm = DetectionDataModule("digits_detect", splits_dir, batch_size=32, fresh_canvases=True)
    dm.setup()
    assert dm.input_shape == (1, 64, 64) and len(dm.datasets["test"]) == 1000
    assert isinstance(dm.train_dataloader().dataset, FreshCanvases)
    x, t = next(iter(DetectionDataModule("digits_detect", splits_dir, batch_size=32).train_dataloader()))
    assert x.shape == (32, 1, 64, 64) and t.shape == (32, 4, 5)  # the prepared canvases
    fresh = FreshCanvases(GLYPHS, GLYPH_LABELS, 8, seed=0, size=64, max_objects=4)
    first, second = [torch.stack([x for x, _ in fresh]) for _ in range(2)]  # two epochs
    assert first.shape == (8, 1, 64, 64) and not torch.equal(first, second)
    again = torch.stack([x for x, _ in FreshCanvases(GLYPHS, GLYPH_LABELS, 8, seed=0, size=64, max_objects=4)])
    assert torch.equal(again, first)  # seeded by (seed, epoch)


# ---- end to end ----------------------------------------------------------------------------------------------

def test_detect_task_trains_evaluates_and_draws(project):
    import json

    from dlzoo.evaluate import evaluate
    from dlzoo.train import run

    out = project / "out" / "yolo"
    cfg = compose(["experiment=digits_yolo", *FAST, "trainer.max_epochs=1", "trainer.limit_train_batches=3",
                   "+trainer.limit_val_batches=2", "train.test=false", "train.log_model=false", "data.fresh_canvases=false",
                   "detect.score_threshold=0.2", "detect.max_detections=10"])  # few boxes: an untrained net's are noise
    run(cfg, out, ["experiment=digits_yolo"])
    row = evaluate(out, project / "eval", split="val")
    assert row["task"] == "detect" and 0.0 <= row["val/map"] <= row["val/map50"] <= 1.0
    assert row["val/images_per_s"] > 0 and "val/ap_9" in row
    assert (project / "eval" / "plots" / "detections.png").stat().st_size > 10_000
    rows = (project / "eval" / "predictions.csv").read_text().splitlines()
    assert rows[0] == "actual,predicted" and len(rows) > 500  # every true box of 500 canvases, matched or missed
    json.dumps(row)


def test_detect_task_refuses_a_checkpoint_on_val_acc():
    from dlzoo import builders
    from dlzoo.errors import ConfigError

    cfg = compose(["task=detect", "data=digits_detect", "model=yolo"])
    with pytest.raises(ConfigError, match="val/map"):
        builders.build_task(cfg, yolo_net(), 10)


@pytest.mark.slow
def test_yolo_reaches_its_bar(project):
    from dlzoo.train import run

    cfg = compose(["experiment=digits_yolo", *FAST, "train.log_model=false"])
    test = run(cfg, project / "out" / "digits_yolo", ["experiment=digits_yolo"])["test"]
    print(f"digits_yolo: test/map50={test['test/map50']:.4f} test/map={test['test/map']:.4f}")
    assert test["test/map50"] >= 0.95 and test["test/map"] >= 0.70


def test_report_section_tabulates_detectors(tmp_path):
    from dlzoo.report.sections import SECTIONS
    from dlzoo.report.sections.detection import section

    assert section in SECTIONS
    rows = [{"name": "digits_yolo", "task": "detect", "model": "yolo", "test/map50": 0.97, "test/map": 0.72,
             "test/images_per_s": 900.0, "test/ap_0": 0.8, "test/ap_1": 0.6, "num_params": 247684, "epochs": 20},
            {"name": "digits_mlp", "task": "classify", "test/acc": 0.97}]
    md = section(rows, tmp_path)
    assert "| digits_yolo | yolo | 0.970 | 0.720 | 900 | 247,684 | 20 |" in md and "digits_mlp" not in md
    assert "| digits_yolo | 0.80 | 0.60 |" in md
    assert section(rows[1:], tmp_path) is None
