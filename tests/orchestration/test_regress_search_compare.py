"""The regression task, the Optuna search (child runs, crashed trials) and the report's comparisons."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
import torch

from conftest import FAST, ROOT, compose


def _client(project) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


def test_least_squares_recovers_an_exact_linear_map():
    from dlzoo.tasks.regress import affine_coefficients, least_squares

    torch.manual_seed(0)
    x, w, b = torch.randn(50, 4), torch.tensor([1.0, -2.0, 0.5, 3.0]), 0.7
    w_ls, b_ls = least_squares(x, x @ w + b)
    assert torch.allclose(w_ls, w, atol=1e-5) and b_ls.item() == pytest.approx(b, abs=1e-5)
    w_f, b_f = affine_coefficients(lambda z: 2 * (z @ w) + 1, 4)
    assert torch.allclose(w_f, 2 * w) and b_f.item() == pytest.approx(1.0)


def test_synthetic_1d_data_is_seeded(tmp_path):
    from dlzoo.prepare import prepare

    for seed, name in ((1, "a"), (1, "b"), (2, "c")):
        prepare(ROOT / "data", tmp_path / name, seed, 0.15, 0.2, datasets=["synth1d"])
    y = {n: np.load(tmp_path / n / "synth1d" / "y_train.npy") for n in "abc"}
    assert np.array_equal(y["a"], y["b"]) and not np.array_equal(y["a"], y["c"])


def test_linear_regression_run_is_evaluated_against_the_closed_form(project):
    from dlzoo.evaluate import evaluate
    from dlzoo.train import run

    cfg = compose(["experiment=diabetes_linear", "trainer.max_epochs=15", "train.log_model=false", *FAST])
    info = run(cfg, project / "out", [])
    assert set(info["test"]) >= {"test/rmse", "test/mae", "test/r2", "test/loss"}
    assert info["best_score"].keys() == {"val/loss"}
    summary = evaluate(project / "out", project / "eval")
    assert summary["task"] == "regress" and summary["test/rmse"] > summary["test/mae"] > 0
    # SGD gets close to the optimum of the same model (R^2 of the closed form ~0.41 on this split)
    assert abs(summary["test/r2"] - summary["test/r2_closed_form"]) < 0.05
    assert summary["linear/weight_gap_to_closed_form"] < 0.5
    run_ = _client(project).get_run(info["run_id"])
    assert run_.data.metrics["test/r2_closed_form"] == pytest.approx(summary["test/r2_closed_form"])
    assert "val/r2" in run_.data.metrics
    actual, predicted = np.loadtxt(project / "eval" / "predictions.csv", delimiter=",", skiprows=1).T
    assert len(actual) == 89 and 25 <= predicted.mean() <= 346  # target units, not standardised


SEARCH = """# @package _global_
hparams_search:
  n_trials: 4
  seed: 0
  params:
    optimizer.lr: {type: categorical, choices: [-1.0, 0.01]}
    model.hidden: {type: categorical, choices: [[4], [8, 4]]}
trainer: {max_epochs: 2, enable_progress_bar: false, enable_model_summary: false}
train: {log_model: false, test: false}
"""


def test_search_records_child_runs_and_survives_a_crashed_trial(project):
    from dlzoo.search import search
    from dlzoo.train import run

    (project / "conf" / "hparams_search" / "tiny.yaml").write_text(SEARCH)
    overrides = ["experiment=diabetes_mlp", "hparams_search=tiny"]
    summary = search(compose(overrides), project / "out", overrides, train=run)
    assert summary["n_failed"] >= 1 and summary["n_complete"] >= 1  # lr=-1 trials fail, the others run
    assert summary["n_failed"] + summary["n_complete"] == 4 and summary["best_params"]["optimizer.lr"] == 0.01
    client = _client(project)
    parent = client.get_run(summary["parent_run_id"])
    assert parent.info.status == "FINISHED"
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{summary['parent_run_id']}'")
    assert len(children) == 4
    assert sum(c.info.status == "FAILED" for c in children) == summary["n_failed"]
    assert all("optimizer.lr" in c.data.tags.get("dlzoo.error", "") for c in children if c.info.status == "FAILED")
    best = min(c.data.metrics["val/loss"] for c in children if c.info.status == "FINISHED")
    assert parent.data.metrics["best/val/loss"] == pytest.approx(summary["best_value"])
    assert summary["best_value"] == pytest.approx(best, rel=0.05)  # best epoch's val/loss vs last logged
    assert parent.data.params["best.model.hidden"] == summary["best_params"]["model.hidden"]


def test_comparison_trains_each_variant_and_the_report_shows_it(project):
    from dlzoo.compare import compare
    from dlzoo.report.leaderboard import by_dataset
    from dlzoo.report.sections.comparisons import optimizers, rnn_dropout

    (project / "conf" / "comparison" / "optimizers.yaml").write_text(
        "title: tiny\nbase: [experiment=digits_mlp, trainer.max_epochs=2, 'model.hidden=[16]']\n"
        "variants:\n  sgd: [optimizer=sgd]\n  adam: [optimizer=adam]\n")
    result = compare("optimizers", project / "runs")
    v = result["variants"]
    assert list(v) == ["sgd", "adam"] and all(len(x["curves"]["val/loss"]) == 2 for x in v.values())
    assert all(x["gap/acc"] == pytest.approx(x["train/acc"] - x["val/acc"]) for x in v.values())
    children = _client(project).search_runs([_client(project).get_run(v["sgd"]["run_id"]).info.experiment_id],
                                            f"tags.mlflow.parentRunId = '{result['parent_run_id']}'")
    assert {c.data.params["optimizer._target_"] for c in children} == {"torch.optim.SGD", "torch.optim.Adam"}
    text = optimizers([json.loads(json.dumps(result))], project / "report")
    assert "| sgd |" in text and "| adam |" in text and (project / "report" / "optimizers.png").exists()
    # a comparison judged by its train-val gap (the extra suite's rnn_dropout) names the smallest gap
    gap = rnn_dropout([json.loads(json.dumps(result)) | {"comparison": "rnn_dropout"}], project / "report")
    smallest = min(v, key=lambda k: v[k]["gap/loss"])
    assert f"Smallest loss gap: **{smallest}**" in gap and "| adam |" in gap
    assert (project / "report" / "rnn_dropout.png").exists() and rnn_dropout([result], project / "report") is None
    regress = [{"name": "a", "dataset": "diabetes", "test/r2": 0.3}, {"name": "b", "dataset": "diabetes", "test/r2": 0.5}]
    groups = by_dataset([result, *regress])
    assert list(groups) == ["diabetes"] and [r["name"] for r in groups["diabetes"]] == ["b", "a"]


@pytest.mark.slow
def test_diabetes_mlp_beats_the_linear_baseline(project):
    """The pipeline's diabetes_mlp, composed as `configure@diabetes_mlp` composes it. On this project's test split
    (prepare.seed 0) the closed-form linear fit reaches R^2 0.407 and the best models of several families
    (MLP, SVR, boosting; chosen on val) 0.42-0.45, so the floor asserted here is the linear one plus a margin."""
    from dlzoo.train import run

    cfg = compose(["experiment=diabetes_mlp", *FAST, "train.log_model=false"])
    r2 = run(cfg, project / "out", ["experiment=diabetes_mlp"])["test"]["test/r2"]
    print(f"diabetes_mlp: test/r2={r2:.4f}")
    assert r2 >= 0.41
