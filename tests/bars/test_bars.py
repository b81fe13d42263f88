"""The accuracy bars of the foundation issue, reached by the pipeline's own experiment configs.

Each experiment is composed exactly as the `configure@<exp>` stage composes it and trained with the same
code path as `train@<exp>`; only the progress bar is switched off.
"""

from __future__ import annotations

import pytest

from conftest import FAST, compose

BARS = {"digits_lenet5": 0.97, "mnist1d_cnn1d": 0.90, "mnist1d_mlp": 0.60}


# Whole trainings (LeNet-5 alone is 70 s on a 2-core EPYC): they run with the slow bar tests (`make test-slow`),
# next to the same bars held across seeds and thread counts (tests/pipeline/test_seeds.py) and the
# higher MNIST-1D bars (tests/tasks/test_sequences.py).
@pytest.mark.slow
@pytest.mark.parametrize("experiment,bar", sorted(BARS.items()))
def test_pipeline_experiment_reaches_its_bar(experiment, bar, project):
    from dlzoo.train import run

    cfg = compose([f"experiment={experiment}", *FAST, "train.log_model=false"])
    info = run(cfg, project / "out" / experiment, [f"experiment={experiment}"])
    acc = info["test"]["test/acc"]
    print(f"{experiment}: test/acc={acc:.4f} (bar {bar})")
    assert acc >= bar
