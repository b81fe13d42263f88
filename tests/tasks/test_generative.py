"""Generative models: VAE maths, GAN training steps, the ring's mode metric, sample quality on
digits (Fréchet distance in a classifier's feature space), and the family's bars (slow)."""

from __future__ import annotations

from functools import partial

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from conftest import FAST, compose
from dlzoo.data.synthetic import RING_STD, make_ring, ring_centers
from dlzoo.models import get_model
from dlzoo.models.generative import reparameterize
from dlzoo.tasks.generative import GANTask, kl_to_standard_normal, mode_coverage


def _trainer(**kw) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, **kw)


def test_reparameterisation_passes_gradients_to_mu_and_logvar():
    torch.manual_seed(0)
    mu = torch.randn(5, 3, requires_grad=True)
    logvar = torch.randn(5, 3, requires_grad=True)
    torch.manual_seed(1)
    z = reparameterize(mu, logvar)
    torch.manual_seed(1)
    eps = torch.randn(5, 3)  # the noise reparameterize drew
    assert torch.allclose(z, mu + torch.exp(0.5 * logvar) * eps)
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones_like(mu))  # dz/dmu = 1
    assert torch.allclose(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * eps)  # dz/dlogvar = sigma*eps/2


def test_kl_closed_form_matches_torch_distributions():
    from torch.distributions import Normal, kl_divergence

    torch.manual_seed(0)
    mu, logvar = torch.randn(6, 4) * 2, torch.randn(6, 4)
    expected = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(kl_to_standard_normal(mu, logvar), expected, atol=1e-5)
    assert torch.allclose(kl_to_standard_normal(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))  # q = prior


def test_mode_coverage_on_constructed_samples():
    centers = torch.from_numpy(ring_centers())  # (8, 2)
    torch.manual_seed(0)
    five = centers[torch.arange(1000) % 5] + 0.01 * torch.randn(1000, 2)  # 5 modes, all within 3 std
    assert mode_coverage(five, centers, RING_STD) == {"modes": 5.0, "hq": 1.0}
    between = torch.zeros(1000, 2)  # the ring's centre: no mode nearby
    assert mode_coverage(between, centers, RING_STD) == {"modes": 0.0, "hq": 0.0}
    # 8 modes, but half the samples spread 5 std away; one stray point at a mode does not count as covering it
    spread = centers[torch.arange(1000) % 8] + torch.cat([torch.zeros(500, 2), torch.full((500, 2), 5 * RING_STD)])
    assert mode_coverage(spread, centers, RING_STD) == {"modes": 8.0, "hq": 0.5}
    stray = torch.cat([centers[torch.zeros(999, dtype=torch.long)], centers[3:4]])
    assert mode_coverage(stray, centers, RING_STD)["modes"] == 1.0


@pytest.mark.parametrize("objective,extra", [("nonsaturating", {}),
                                             ("wasserstein", {"gradient_penalty": 10.0, "n_critic": 2, "lr_decay": True}),
                                             ("wasserstein", {"clip": 0.01})])
def test_gan_step_updates_both_networks(objective, extra):
    torch.manual_seed(0)
    x = torch.from_numpy(make_ring(0, {"train": 256})["x_train"]).unsqueeze(1)  # (256, 1, 2)
    net = get_model("gan_mlp", input_shape=(1, 2), num_classes=8, hidden=[16, 16])
    task = GANTask(net, partial(torch.optim.Adam, lr=1e-3), objective=objective,
                   centers=ring_centers().tolist(), mode_std=RING_STD, eval_samples=200, **extra)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    trainer = _trainer(max_epochs=1)
    trainer.fit(task, DataLoader(TensorDataset(x), batch_size=64))
    assert len(trainer.optimizers) == 2
    if extra.get("lr_decay"):  # linear to 0 over the run's single epoch
        assert all(o.param_groups[0]["lr"] == 0.0 for o in trainer.optimizers)
    changed = {k for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    # every parameter of G and every weight matrix of D moved (the critic's output bias has no gradient: the
    # Wasserstein loss E[D(G(z))] - E[D(x)] does not change when D shifts by a constant)
    assert {k for k, v in before.items() if k.startswith("generator") or v.ndim == 2} <= changed
    if extra.get("clip"):
        assert all(p.abs().max() <= 0.01 + 1e-7 for p in net.discriminator.parameters())
    results = _trainer().test(task, DataLoader(TensorDataset(x), batch_size=256), verbose=False)[0]
    assert 0 <= results["test/modes"] <= 8 and 0 <= results["test/hq"] <= 1


@pytest.mark.parametrize("model", ["ae", "cvae"])
def test_autoencode_logs_recon_and_kl_apart(model, project):
    from dlzoo import builders

    cfg = compose(["experiment=digits_vae", f"model={model}", "autoencode.beta=2.0"])
    dm = builders.build_datamodule(cfg)
    dm.setup()
    assert 0.0 <= dm.datasets["train"].tensors[0].min() and dm.datasets["train"].tensors[0].max() <= 1.0
    task = builders.build_task(cfg, builders.build_network(cfg, dm.input_shape, dm.num_classes), dm.num_classes)
    trainer = _trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=2)
    trainer.fit(task, datamodule=dm)
    m = trainer.callback_metrics
    assert torch.isclose(m["val/loss"], m["val/recon"] + 2.0 * m["val/kl"], atol=1e-4)  # β weighs the KL
    assert torch.isclose(m["val/elbo"], -(m["val/recon"] + m["val/kl"]), atol=1e-4)  # the ELBO is at β = 1
    assert (m["val/kl"] == 0) == (model == "ae") and m["val/recon"] > 0
    out = task.eval().evaluation_outputs(dm, dm.val_dataloader(), "val", project / "eval", "vae")
    labels, preds, metrics, figures = out.labels, out.preds, out.metrics, out.figures
    assert len(labels) == len(preds) == len(dm.datasets["val"]) and set(preds) <= set(range(10))
    assert 0 <= metrics["val/kmeans_nmi"] <= 1 and 0 <= metrics["val/kmeans_acc"] <= 1
    assert {p.name for p in figures} == {"latent_pca.png", "reconstructions.png"} | ({"samples.png"} if model != "ae" else set())


def test_autoencode_refuses_standardised_pixels(project):
    from dlzoo import builders
    from dlzoo.errors import ConfigError

    cfg = compose(["experiment=digits_vae", "data.standardize=true"])
    with pytest.raises(ConfigError, match="standardize=false"):
        builders.build_task(cfg, get_model("vae", input_shape=(1, 8, 8), num_classes=10), 10)


def test_collapsed_sampler_scores_a_visibly_worse_frechet_distance(project):
    """Real held-out digits vs one average digit per label, both against the test digits, in the feature
    space of a (briefly trained) digits classifier of the pipeline."""
    from dlzoo.sample_quality import collapsed_samples, load_classifier, score
    from dlzoo.train import run

    overrides = ["experiment=digits_mlp", "trainer.max_epochs=3", "train.log_model=false", "train.test=false", *FAST]
    out = project / "runs" / "clf"
    run(compose(overrides), out, overrides)
    features = load_classifier(out)
    cfg = compose(["experiment=digits_cvae"])
    from dlzoo import builders

    dm = builders.build_datamodule(cfg)
    dm.setup()
    (x_tr, y_tr), (x_va, y_va), (x_te, _) = (dm.datasets[s].tensors for s in ("train", "val", "test"))
    real = score(features, x_va, y_va, x_te)
    collapsed = score(features, collapsed_samples(x_tr, y_tr, y_va), y_va, x_te)
    print(f"FD real {real['fd']:.2f} (acc {real['acc']:.3f}) vs collapsed {collapsed['fd']:.2f} (acc {collapsed['acc']:.3f})")
    assert real["acc"] > 0.8 and collapsed["acc"] > 0.8  # both look like their labels to the classifier...
    assert collapsed["fd"] > 3 * real["fd"]  # ...but only FD sees the missing variety


# ---- the bars, by the pipeline's own experiment configs (slow) ----

@pytest.mark.slow
def test_cvae_samples_are_classified_as_requested(project):
    from dlzoo.sample_quality import sample_quality
    from dlzoo.train import run

    runs = {}
    for exp in ("digits_lenet5", "digits_cvae"):
        overrides = [f"experiment={exp}", "train.log_model=false", *FAST]
        runs[exp] = project / "runs" / exp
        run(compose(overrides), runs[exp], overrides)
    result = sample_quality(runs["digits_cvae"], runs["digits_lenet5"], project / "samples")
    print({k: v for k, v in result.items() if k.startswith("samples/") and not isinstance(v, dict)})
    assert result["samples/acc"] >= 0.95
    assert result["samples/fd_val"] < result["samples/fd"] < result["samples/fd_collapsed"]


@pytest.mark.slow
def test_wgan_covers_all_modes_of_the_ring(project):
    from dlzoo.train import run

    overrides = ["experiment=ring_wgan", "train.log_model=false", *FAST]
    test = run(compose(overrides), project / "runs" / "ring_wgan", overrides)["test"]
    print(test)
    assert test["test/modes"] == 8 and test["test/hq"] >= 0.40


@pytest.mark.slow
def test_beta_sweep_trades_kl_for_reconstruction(project):
    from dlzoo.compare import compare

    variants = compare("beta_vae", project / "runs")["variants"]
    betas = sorted(variants, key=lambda v: float(v.split("_")[1]))
    kl, recon = [variants[b]["val/kl"] for b in betas], [variants[b]["val/recon"] for b in betas]
    print(dict(zip(betas, zip(kl, recon))))
    assert all(a > b for a, b in zip(kl, kl[1:]))  # larger β: lower KL
    assert all(a < b for a, b in zip(recon, recon[1:]))  # larger β: higher reconstruction error


def test_report_section_shows_the_generative_results(tmp_path):
    from dlzoo.report.leaderboard import by_dataset
    from dlzoo.report.sections.generative import generative

    rows = [{"name": "digits_cvae", "task": "autoencode", "model": "cvae", "dataset": "digits", "run_id": "r1",
             "test/recon": 20.1, "test/kl": 5.2, "test/elbo": -25.3, "test/mse": 0.02, "test/kmeans_nmi": 0.5},
            {"name": "digits_tvae", "task": "autoencode", "model": "tvae", "dataset": "digits", "run_id": "r3",
             "test/recon": 21.0, "test/kl": 4.4, "test/active_units": 8.0, "test/z_norm_mean": 3.78,
             "test/z_norm_std": 0.69},
            {"name": "ring_wgan", "task": "gan", "model": "gan_mlp", "dataset": "ring8", "run_id": "r2",
             "test/modes": 8.0, "test/hq": 0.61},
            {"comparison": "beta_vae", "title": "β sweep", "parent_run_id": "p",
             "variants": {f"beta_{b}": {"val/kl": 10 / b, "val/recon": 20 + b, "val/elbo": -30.0} for b in (1, 4)}}]
    text = generative(rows, tmp_path)
    assert "| digits_cvae | cvae | 20.10 | 5.20 | -25.30 |" in text and "| ring_wgan | 8/8 | 0.610 |" in text
    assert "| beta_4 | 2.50 | 24.00 |" in text and (tmp_path / "beta_vae.png").exists()
    assert "| digits_tvae | tvae | 8 | 3.78 ± 0.69 |" in text  # latent use, for the runs that measured it
    assert by_dataset(rows) == {}  # not leaderboard rows: no accuracy to rank them by
