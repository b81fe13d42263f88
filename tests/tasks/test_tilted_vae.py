"""Tilted VAE: the tilted prior's shell, its normaliser and KL against numerical integration, training."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import FAST, compose
from dlzoo.errors import ConfigError
from dlzoo.models import get_model
from dlzoo.models.tilted import TiltedPrior, log_normalizer, shell_radius
from dlzoo.tasks.generative import kl_to_standard_normal, latent_use


@pytest.mark.parametrize("tau,dim", [(4.0, 8), (10.0, 8), (6.0, 2)])
def test_prior_samples_sit_on_the_shell(tau, dim):
    prior = TiltedPrior(tau, dim)
    z = prior.sample(20000, torch.Generator().manual_seed(0))
    norms = z.norm(dim=1)
    assert z.shape == (20000, dim)
    assert shell_radius(tau, dim) == pytest.approx((tau + math.sqrt(tau ** 2 + 4 * (dim - 1))) / 2)
    assert norms.mean().item() == pytest.approx(prior.radius, abs=0.1)  # centred on the shell...
    assert norms.std().item() < 1.0  # ...about 1 wide
    plain = torch.randn(20000, dim).norm(dim=1)
    assert (norms.mean() - plain.mean()).item() > tau / 2  # far out of the standard normal's bulk
    directions = z / norms[:, None]
    assert directions.mean(0).abs().max().item() < 0.03  # no preferred direction


def test_log_normaliser_matches_monte_carlo():
    z = torch.randn(400000, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for tau in (0.5, 2.0):
        mc = torch.logsumexp(tau * z.norm(dim=1), 0).item() - math.log(len(z))  # log E exp(τ‖z‖)
        assert log_normalizer(tau, 8) == pytest.approx(mc, abs=0.02)
    assert log_normalizer(0.0, 8) == pytest.approx(0.0, abs=1e-9)


def test_kl_matches_numerical_integration_in_two_dimensions():
    """KL(q ‖ p_τ) = ∫ q log(q / p_τ) on a fine 2-D grid, p_τ normalised on the grid itself (no log Z_τ)."""
    tau = 3.0
    prior = TiltedPrior(tau, 2)
    mu, logvar = torch.tensor([[1.5, -0.5], [0.0, 0.0], [3.0, 2.0]]), torch.tensor([[-1.0, 0.2], [0.0, 0.0], [-2.0, -1.0]])
    torch.manual_seed(0)
    estimate = prior.kl(mu, logvar, kl_to_standard_normal(mu, logvar), samples=200000)
    g = torch.linspace(-12, 12, 1201, dtype=torch.float64)
    zx, zy = torch.meshgrid(g, g, indexing="ij")
    z = torch.stack([zx, zy], -1).reshape(-1, 2)
    cell = (g[1] - g[0]) ** 2
    log_p = tau * z.norm(dim=1) - 0.5 * z.pow(2).sum(1)
    log_p = log_p - torch.logsumexp(log_p, 0) - torch.log(cell)  # normalised on the grid
    for i in range(len(mu)):
        m, s2 = mu[i].double(), logvar[i].double().exp()
        log_q = -0.5 * ((z - m).pow(2) / s2 + torch.log(2 * math.pi * s2)).sum(1)
        exact = (log_q.exp() * (log_q - log_p)).sum() * cell
        assert estimate[i].item() == pytest.approx(exact.item(), abs=0.01), i


def test_kl_is_smallest_on_the_shell_and_tau_zero_is_the_plain_vae():
    prior = TiltedPrior(5.0, 8)
    radii = torch.linspace(0, 10, 41)
    mu = torch.zeros(41, 8)
    mu[:, 0] = radii
    logvar = torch.zeros(41, 8)
    torch.manual_seed(0)
    kl = prior.kl(mu, logvar, kl_to_standard_normal(mu, logvar), samples=4000)
    best = radii[kl.argmin()].item()
    # q's own spread adds to ‖z‖: with unit variance E‖z‖ ≈ √(‖mu‖² + k - 1), the optimum ‖mu‖ ≈ √(τ² - k + 1)
    assert 3.5 < best < prior.radius and kl[0] > kl.min() + 2  # the centre is expensive, the shell is cheap
    assert get_model("vae", input_shape=(1, 8, 8), num_classes=10).prior is None
    with pytest.raises(ConfigError, match=r"model.tau=0: must be a number > 0"):
        get_model("tvae", input_shape=(1, 8, 8), num_classes=10, tau=0)


def test_latent_use_counts_active_units_and_norms():
    means = torch.zeros(100, 4)
    means[:, 0] = torch.linspace(-1, 1, 100)  # varies with the input
    means[:, 1] = 3.0  # constant: collapsed
    means[:, 2] = 0.001 * torch.randn(100)  # below the threshold
    use = latent_use(means)
    assert use["active_units"] == 1.0
    norms = means.norm(dim=1)
    assert use["z_norm_mean"] == pytest.approx(norms.mean().item()) and use["z_norm_std"] == pytest.approx(norms.std().item())


def test_tilted_vae_trains_and_logs_latent_use(project):
    from dlzoo.train import run

    overrides = ["experiment=digits_tvae", "trainer.max_epochs=1", "trainer.limit_train_batches=3", "train.log_model=false", *FAST]
    out = project / "runs" / "tvae"
    result = run(compose(overrides), out, overrides)
    import mlflow

    runs = mlflow.search_runs(experiment_names=[compose(overrides).logger.experiment_name], output_format="list")
    metrics = runs[0].data.metrics
    for key in ("val/active_units", "val/z_norm_mean", "val/z_norm_std", "val/kl", "test/active_units"):
        assert key in metrics, (key, sorted(metrics), result)
    assert 0 <= metrics["val/active_units"] <= 8 and metrics["val/z_norm_mean"] > 0
    # sample quality with the pipeline's classifier-based scores: samples drawn from the tilted prior
    from dlzoo.sample_quality import sample_quality

    clf = ["experiment=digits_mlp", "trainer.max_epochs=1", "train.log_model=false", "train.test=false", *FAST]
    run(compose(clf), project / "runs" / "clf", clf)
    quality = sample_quality(out, project / "runs" / "clf", project / "samples", per_label=20)
    assert quality["samples/count"] == 200 and quality["samples/fd"] > 0 and "samples/acc" not in quality
