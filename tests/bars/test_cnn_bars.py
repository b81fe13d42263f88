"""The CNN family's accuracy bars on digits: every architecture of the default pipeline reaches its bar
(97% test accuracy; the plain-18 control 96%) and the best 99%, trained by the pipeline's own experiment configs."""

from __future__ import annotations

import pytest

from conftest import FAST, compose

CNN_EXPERIMENTS = ["digits_lenet5", "digits_alexnet", "digits_vgg16", "digits_googlenet", "digits_resnet18",
                   "digits_plain18", "digits_resnet50", "digits_densenet", "digits_mobilenet_v1"]


@pytest.mark.slow
def test_every_cnn_reaches_97_and_the_best_99(project):
    from dlzoo.train import run

    assert set(CNN_EXPERIMENTS) <= set(compose([]).pipeline.experiments)  # all are in the default `dvc repro`
    accs = {}
    for experiment in CNN_EXPERIMENTS:
        cfg = compose([f"experiment={experiment}", *FAST, "train.log_model=false"])
        info = run(cfg, project / "out" / experiment, [f"experiment={experiment}"])
        accs[experiment] = info["test"]["test/acc"]
        print(f"{experiment}: test/acc={accs[experiment]:.4f}")
    import runpy

    from conftest import ROOT

    # digits_plain18, the degradation control, has its own bar (benchmarks/seed_bars.py says why)
    BARS = runpy.run_path(str(ROOT / "benchmarks/seed_bars.py"))["BARS"]

    assert all(accs[e] >= BARS[e][1] for e in accs), accs
    assert max(accs.values()) >= 0.99, accs
