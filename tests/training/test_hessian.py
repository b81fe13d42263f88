"""The Hessian critical-points probe: Lanczos / SLQ against a quadratic saddle whose spectrum is known."""

from __future__ import annotations

import pytest
import torch

from conftest import FAST, compose
from dlzoo.errors import ConfigError
from dlzoo.training.hessian import hessian_spectrum, lanczos
from dlzoo.training.probes import HessianSpectrum

EIGS = torch.tensor([4.0, 2.0, 1.0, 0.5, -0.5, -3.0], dtype=torch.float64)  # a saddle: two negative directions


def _saddle():
    """L(θ) = ½ θᵀ A θ + bᵀ θ with A = Q diag(EIGS) Qᵀ, Q a random rotation: ∇²L = A everywhere. The two
    parameter tensors split θ, as a network's layers do."""
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    a, b = q @ torch.diag(EIGS) @ q.T, torch.arange(6, dtype=torch.float64)
    params = [torch.randn(2, 2, dtype=torch.float64, requires_grad=True), torch.randn(2, dtype=torch.float64, requires_grad=True)]

    def loss(batch):
        theta = torch.cat([p.flatten() for p in params])
        return 0.5 * theta @ a @ theta + b @ theta

    return loss, params


def test_lanczos_finds_the_saddles_extreme_eigenvalues_and_sign():
    loss, params = _saddle()
    out = hessian_spectrum(loss, params, [None], steps=6, probes=1)
    assert out["max"] == pytest.approx(4.0, abs=1e-8) and out["min"] == pytest.approx(-3.0, abs=1e-8)
    exact = hessian_spectrum(loss, params, [None], exact_max_params=6)
    assert exact["exact"] == 1.0 and exact["neg_fraction"] == pytest.approx(2 / 6)
    assert exact["max"] == pytest.approx(4.0) and exact["min"] == pytest.approx(-3.0)
    slq = hessian_spectrum(loss, params, [None], steps=6, probes=200)  # E over start vectors = 2/6
    assert slq["neg_fraction"] == pytest.approx(2 / 6, abs=0.05)
    minimum = hessian_spectrum(lambda b: 0.5 * sum((p * p).sum() for p in params) * 3.0, params, [None], steps=6)
    assert minimum["neg_fraction"] == 0.0 and minimum["min"] == pytest.approx(3.0)  # a minimum: none negative


def test_lanczos_ritz_weights_sum_to_one_and_stop_on_an_invariant_subspace():
    theta, w = lanczos(lambda x: torch.diag(EIGS) @ x, torch.tensor([1.0, 0, 0, 0, 0, 1.0], dtype=torch.float64), 6)
    assert len(theta) == 2 and sorted(theta.tolist()) == pytest.approx([-3.0, 4.0])  # v0 spans two eigenvectors
    assert w.sum().item() == pytest.approx(1.0) and w.tolist() == pytest.approx([0.5, 0.5])


def test_probe_arguments_are_checked():
    with pytest.raises(ConfigError, match=r"callbacks.hessian.steps=1: must be an integer >= 2"):
        HessianSpectrum(steps=1)
    from dlzoo.models import get_model
    from dlzoo.tasks.generative import AutoencodeTask

    task = AutoencodeTask(get_model("vae", input_shape=(1, 8, 8), num_classes=10), optimizer=torch.optim.Adam)
    with pytest.raises(ConfigError, match="HessianSpectrum measures classification tasks, not AutoencodeTask"):
        HessianSpectrum().measure(task, torch.utils.data.TensorDataset(torch.rand(4, 1, 8, 8), torch.zeros(4).long()))


def test_probe_logs_the_spectrum_of_a_convex_model_to_mlflow(project):
    """Softmax regression is convex: no negative eigenvalue, and Lanczos's top eigenvalue is the exact one."""
    import mlflow

    from dlzoo.train import run

    probe = "+callbacks.hessian._target_=dlzoo.training.probes.HessianSpectrum"
    base = ["experiment=mnist1d_logreg", "trainer.max_epochs=3", "train.log_model=false", "train.test=false",
            probe, "+callbacks.hessian.max_samples=256", *FAST]
    run(compose([*base, "+callbacks.hessian.exact_max_params=500"]), project / "runs" / "exact", base)
    run(compose([*base, "+callbacks.hessian.steps=40", "+callbacks.hessian.every_n_epochs=2"]),
        project / "runs" / "lanczos", base)
    runs = mlflow.search_runs(experiment_names=[compose(base).logger.experiment_name], output_format="list",
                              order_by=["attributes.start_time ASC"])
    exact, lanczos_run = (r.data.metrics for r in runs)
    assert exact["hessian/exact_final"] == 1.0 and lanczos_run["hessian/exact_final"] == 0.0
    assert exact["hessian/neg_fraction_final"] == 0.0 and exact["hessian/min_final"] > -1e-4 * exact["hessian/max_final"]
    assert lanczos_run["hessian/max_final"] == pytest.approx(exact["hessian/max_final"], rel=1e-3)
    assert lanczos_run["hessian/neg_fraction_final"] < 0.01
    history = (project / "runs" / "lanczos" / "history.csv").read_text().splitlines()
    column = history[0].split(",").index("hessian/max")
    assert [bool(row.split(",")[column]) for row in history[1:]] == [False, True, False]  # on its cadence only
    # the report reads the probe's figures from the runs: a convex loss reads as a minimum, with its path
    from dlzoo.report.sections.critical_points import section
    from dlzoo.report.store import enrich

    rows = [{"name": name, "run_id": r.info.run_id} for name, r in zip(("exact", "lanczos"), runs)]
    assert enrich(rows, mlflow.get_tracking_uri()) == []
    assert rows[0]["hessian"]["max"] == exact["hessian/max_final"] and rows[0]["hessian"]["path"] == {}
    assert [v for _, v in rows[1]["hessian"]["path"]["max"]] == pytest.approx([lanczos_run["hessian/max"]])
    text = section(rows, project / "report")
    assert text.count("| local minimum: no negative curvature found |") == 2 and "| saddle point" not in text
    assert "| exact | " in text and not (project / "report" / "hessian.png").exists()  # one point: no path plot


def test_report_reads_a_negative_eigenvalue_as_a_saddle_point_and_plots_the_path(tmp_path):
    from dlzoo.report.sections.critical_points import NEGATIVE_TOL, reading, section

    assert reading({"max": 2.0, "min": -0.1}).startswith("saddle point")
    assert reading({"max": 2.0, "min": -0.5 * NEGATIVE_TOL * 2.0}).startswith("local minimum")  # a zero eigenvalue
    path = {"max": [(10, 3.0), (20, 2.0)], "min": [(10, -0.4), (20, -0.01)], "neg_fraction": [(10, 0.2), (20, 0.05)]}
    text = section([{"name": "mlp", "hessian": {"max": 2.0, "min": -0.01, "neg_fraction": 0.05, "path": path}},
                    {"name": "other"}], tmp_path)
    assert "| mlp | 2 | -0.01 | 0.050 | saddle point" in text and "other" not in text
    assert (tmp_path / "hessian.png").stat().st_size > 0 and section([{"name": "x"}], tmp_path) is None
