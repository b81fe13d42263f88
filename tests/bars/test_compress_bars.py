"""The compression bars, reached by the pipeline's own experiment configs and recipes.

Each source is trained exactly as its `train@<exp>` stage trains it, then compressed with the recipes of
its `compress@<exp>` stage (conf/config.yaml pipeline.compress) through the same runner."""

from __future__ import annotations

import pytest

from conftest import FAST, compose
from dlzoo.report.sections.compression import gap_closed


def _compress(project, experiment: str, recipes: list[str]) -> dict[str, dict]:
    from dlzoo.compress.runner import compress
    from dlzoo.train import run

    cfg = compose([f"experiment={experiment}", *FAST, "train.log_model=false", "train.test=false"])
    run(cfg, project / "artifacts" / "runs" / experiment, [f"experiment={experiment}"])
    rows = compress(project / "artifacts" / "runs" / experiment, recipes, project / "artifacts" / "compressed")
    for r in rows:
        print(r["name"], {k: round(v, 4) for k, v in r.items() if isinstance(v, float)})
    return {r["name"].split("/", 1)[-1] if "/" in r["name"] else "source": r for r in rows}


@pytest.mark.slow
def test_lenet300_int8_and_pruning_bars(project):
    by = _compress(project, "digits_lenet300", ["quantize_dynamic", "prune_global", "prune_structured"])
    q = by["quantize_dynamic"]
    assert q["compression_ratio"] >= 3.5 and q["test/acc_delta"] >= -0.01
    # (latency: >= 1.5x at batch 256 is the bar; it is reported, not asserted, on a shared 2-core machine)
    p = by["prune_global"]
    assert p["sparsity"] >= 0.89 and p["test/acc_delta"] >= -0.01
    s = by["prune_structured"]
    assert s["params/total"] <= 0.5 * by["source"]["params/total"] and s["test/acc_delta"] >= -0.02
    assert s["latency/b256_us"] < by["source"]["latency/b256_us"]


@pytest.mark.slow
def test_lenet5_pruning_and_static_int8_bars(project):
    by = _compress(project, "digits_lenet5", ["prune_global", "quantize_static"])
    p = by["prune_global"]
    assert p["sparsity"] >= 0.89 and p["test/acc_delta"] >= -0.01
    q = by["quantize_static"]
    assert q["compression_ratio"] >= 3.5 and q["test/acc_delta"] >= -0.01


@pytest.mark.slow
def test_cnn1d_structured_pruning_bar(project):
    pruned = _compress(project, "mnist1d_cnn1d", ["prune_structured"])
    s = pruned["prune_structured"]
    assert s["params/total"] <= 0.5 * pruned["source"]["params/total"] and s["test/acc_delta"] >= -0.02


@pytest.mark.slow
def test_lenet5_to_lenet300_distillation_beats_scratch(project):
    by = _compress(project, "digits_lenet5", ["distill_lenet300"])
    d, s = by["distill_lenet300-distilled"], by["distill_lenet300-scratch"]
    assert d["test/acc"] > s["test/acc"]
    # the same student both ways (LeNet-300-100: faster than LeNet-5 at batch 256, not smaller -- see README)
    assert d["params/total"] == s["params/total"] == 300 * 32 * 32 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    # the bar, >= 50% of the teacher-student gap closed, is judged over seeds by
    # benchmarks/distill_seeds.py (one seed moves it by tens of points on 360 test images); printed here
    print("gap closed:", gap_closed(by["source"]["test/acc"], s["test/acc"], d["test/acc"]))
