"""Mixed precision, the path GPUs take (``trainer.precision=bf16-mixed``), trained on the CPU's autocast:
one fast_dev_run of a representative experiment of every task family and network kind."""

from __future__ import annotations

import pytest
from conftest import FAST, compose

# one experiment per task family, and per network kind within classification and seq2seq
FAMILIES = ["digits_lenet5", "mnist1d_gru", "mnist1d_lstm", "mnist1d_transformer", "diabetes_mlp", "seq2seq_transformer",
            "seq2seq_lstm", "digits_cvae", "ring_gan", "ring_wgan", "digits_yolo", "digits_rcnn"]
# `make test` keeps one of each task (classify: a CNN and an RNN); the other families, the R-CNN's 30 s among
# them, run with the slow tests
IN_MAKE_TEST = {"digits_lenet5", "mnist1d_gru", "diabetes_mlp", "seq2seq_lstm", "digits_cvae", "ring_gan", "digits_yolo"}


@pytest.mark.parametrize("experiment", [e if e in IN_MAKE_TEST else pytest.param(e, marks=pytest.mark.slow)
                                        for e in FAMILIES])
def test_every_family_trains_under_bf16_mixed(project, experiment):
    from dlzoo.train import run

    cfg = compose([f"experiment={experiment}", "trainer.precision=bf16-mixed", "trainer.fast_dev_run=true",
                   "train.log_model=false", *FAST])
    info = run(cfg, project / "out", [])
    assert info["status"] == "FINISHED" and info["epochs"] == 1


@pytest.mark.parametrize("experiment, precision", [("ring_gan", "bf16-true"), ("ring_wgan", "64-true")])
def test_gans_draw_latent_codes_in_the_weights_dtype(project, experiment, precision):
    """bf16-true / 64-true cast the weights: the generator's latent codes must follow (they are drawn inside)."""
    from dlzoo.train import run

    cfg = compose([f"experiment={experiment}", f"trainer.precision={precision}", "trainer.fast_dev_run=true",
                   "train.log_model=false", *FAST])
    assert run(cfg, project / "out", [])["status"] == "FINISHED"


@pytest.mark.parametrize("experiment, precision", [("digits_lenet5", "16-true"), ("mnist1d_gru", "bf16-true"),
                                                   ("diabetes_mlp", "64-true")])
def test_true_precisions_train_with_the_model_summary_on(project, experiment, precision):
    """Lightning's model summary forwards the task's example input as given (batches are converted by the
    precision plug-in, it is not): the example must come in the weights' dtype."""
    from dlzoo.train import run

    cfg = compose([f"experiment={experiment}", f"trainer.precision={precision}", "trainer.fast_dev_run=true",
                   "train.log_model=false", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=true"])
    assert run(cfg, project / "out", [])["status"] == "FINISHED"


def test_a_float16_overflow_names_the_mixed_precisions(project):
    from dlzoo.train import run

    with pytest.raises(FloatingPointError, match=r"train/loss is (nan|inf).*trainer.precision=16-mixed / bf16-mixed"):
        run(compose(["experiment=digits_mlp", "trainer.precision=16-true", "optimizer=sgd", "optimizer.lr=1e4",
                     "trainer.max_epochs=2", "train.log_model=false", *FAST]), project / "out", [])


def test_transformer_engine_without_its_package_is_refused_before_any_data():
    from dlzoo.training.accelerators import check_trainer
    from dlzoo.errors import ConfigError

    with pytest.raises(ConfigError, match=r"transformer-engine needs a CUDA GPU .*bf16-mixed or 16-mixed"):
        check_trainer(compose(["trainer.precision=transformer-engine"]).trainer)
