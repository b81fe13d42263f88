"""Generative tasks (lectures 8-9): ``autoencode`` (AE, VAE, β-VAE, CVAE) and ``gan`` (GAN, WGAN).

autoencode: loss = reconstruction + β·KL(q(z|x) || prior) per sample (prior N(0, I), or the tilted prior of
a Tilted VAE), both terms logged apart (``*/recon``, ``*/kl``); ``*/elbo`` = -(recon + KL), the evidence
lower bound with β = 1 whatever β was trained with; latent-space use on val / test (``*/active_units``,
``*/z_norm_mean``, ``*/z_norm_std``: see ``latent_use``). Pixels are read as Bernoulli probabilities
(``recon="bce"``: the ELBO is in nats) or with a fixed-variance Gaussian (``recon="mse"``: the sum of squared
errors). ``test/mse`` is the per-pixel squared error of the mean reconstruction. The plain autoencoder has
no KL term (logged as 0).

gan: Lightning manual optimisation, one optimizer for the discriminator / critic and one for the generator.
``objective="nonsaturating"``: D minimises BCE(D(x), 1) + BCE(D(G(z)), 0), G minimises -log D(G(z))
(Goodfellow et al. 2014, §3: the non-saturating variant). ``objective="wasserstein"``: the critic maximises
E[D(x)] - E[D(G(z))], G minimises -E[D(G(z))] (Arjovsky et al. 2017), with the critic kept ~1-Lipschitz by
weight clipping (``clip``) and/or the gradient penalty λ·(‖∇D(x̂)‖ - 1)² on random interpolates
(``gradient_penalty`` = λ, WGAN-GP, Gulrajani et al. 2017); ``n_critic`` critic steps per generator step;
``lr_decay``: both learning rates decay linearly to 0 over the run.
On the 2-D ring the sample quality is measured each validation epoch (``val/modes``, ``val/hq``) and on
test (``test/modes``, ``test/hq``): see ``mode_coverage``.

Both log sample figures to MLflow every ``figures_every_n_epochs`` epochs (and after the last one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dlzoo.tasks.base import BuildContext, EvalOutputs, StagedSteps, Task
from dlzoo.tasks.registry import register_task
from dlzoo.training.optim import param_groups


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per sample, closed form:
    0.5 * sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2). (B, latent) -> (B,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)


def latent_use(means: torch.Tensor, threshold: float = 0.01) -> dict[str, float]:
    """How much of the latent space the encoder uses, from its means mu(x) over a split, (N, latent):
    ``active_units``: latent dimensions whose mean varies with the input, Cov_x(mu_j(x)) > ``threshold``
    (Burda et al. 2016, §5.2; the others collapsed to the prior); ``z_norm_mean`` / ``z_norm_std``: the mean
    and spread of ‖mu(x)‖, to set against the prior's shell (≈ √latent for N(0, I), ≈ τ tilted)."""
    norms = means.norm(dim=1)
    return {"active_units": float((means.var(0) > threshold).sum()), "z_norm_mean": float(norms.mean()),
            "z_norm_std": float(norms.std()) if len(norms) > 1 else 0.0}


def image_grid(images: np.ndarray, rows: int) -> np.ndarray:
    """(N, 1, H, W) values in [0, 1] -> one (rows*(H+1), cols*(W+1)) uint8 image, a 1-pixel grey border."""
    n, _, h, w = images.shape
    cols = -(-n // rows)
    grid = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1), 128, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w] = np.clip(img[0] * 255, 0, 255)
    return grid


class _FiguresMixin:
    """Every ``figures_every_n_epochs`` validation epochs (and after the last), ``self._figures(epoch)`` is
    logged to the run's MLflow run (nothing without an MLflow logger, e.g. in tests)."""

    def on_validation_epoch_end(self) -> None:
        from lightning.pytorch.loggers import MLFlowLogger

        every, epoch = self.hparams.figures_every_n_epochs, self.current_epoch
        last = epoch + 1 >= (self.trainer.max_epochs or 0)
        if (not isinstance(self.logger, MLFlowLogger) or self.trainer.sanity_checking or not every
                or not (last or epoch % every == 0) or self.global_rank != 0):
            return
        self._figures(self.logger.experiment, self.logger.run_id, epoch)


@register_task("autoencode")
class AutoencodeTask(Task, _FiguresMixin, StagedSteps, pl.LightningModule):
    """Trains a ``dlzoo.models.generative.VAE`` (AE, VAE, CVAE); β-VAE is ``beta`` != 1."""

    # the figure a run of this task is ranked and reported by: the task's loss on the test split
    # (the negative ELBO for VAEs)
    score_key = "test/loss"

    @classmethod
    def from_config(cls, cfg, net: nn.Module, num_classes: int, context: BuildContext):
        from dlzoo.tasks.options import refuse_monitors, section, training_kwargs

        refuse_monitors(cfg, ("val/acc",), "add callbacks=regress (monitors val/loss), or start from "
                        "experiment=digits_vae")
        if cfg.data.get("standardize", True):
            from dlzoo.errors import ConfigError

            raise ConfigError("task=autoencode reads pixels as probabilities in [0, 1]: set data.standardize=false")
        return cls(net, **training_kwargs(cfg), **section(cfg, "autoencode"))

    def __init__(self, net: nn.Module, optimizer: Callable, scheduler: Callable | None = None,
                 scheduler_interval: str = "epoch", weight_decay: float = 0.0, l1: float = 0.0, l2_penalty: float = 0.0,
                 beta: float = 1.0, recon: str = "bce", figures_every_n_epochs: int = 10):
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        if recon not in ("bce", "mse"):
            from dlzoo.errors import ConfigError

            raise ConfigError(f"autoencode.recon={recon!r} is unknown; choose one of: bce, mse")
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self._means: list[torch.Tensor] = []  # encoder means of the current val / test epoch

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        return self.net.autoencode(x, y if self.net.conditional else None)

    def terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-sample reconstruction and KL terms, (B,) each, and the reconstruction logits."""
        logits, mu, logvar = self(x, y)
        if self.hparams.recon == "bce":
            recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        else:
            recon = (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1)
        kl = kl_to_standard_normal(mu, logvar) if logvar is not None else torch.zeros_like(recon)
        if getattr(self.net, "prior", None) is not None:  # Tilted VAE: KL to the tilted prior
            kl = self.net.prior.kl(mu, logvar, kl)
        return {"recon": recon, "kl": kl, "logits": logits, "mu": mu}

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch  # (B, 1, H, W) in [0, 1], (B,)
        t = self.terms(x, y)
        recon, kl = t["recon"].mean(), t["kl"].mean()
        loss = recon + self.hparams.beta * kl
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=stage != "test", sync_dist=True)
        self.log(f"{stage}/recon", recon, on_step=False, on_epoch=True, sync_dist=True)
        self.log(f"{stage}/kl", kl, on_step=False, on_epoch=True, sync_dist=True)
        if stage != "train":
            self.log(f"{stage}/elbo", -(recon + kl), on_epoch=True, sync_dist=True)
        if stage == "test":
            self.log("test/mse", (torch.sigmoid(t["logits"]) - x).pow(2).mean(), on_epoch=True, sync_dist=True)
        if stage != "train":
            self._means.append(t["mu"].detach())
        return loss

    def on_validation_epoch_start(self) -> None:
        self._means = []

    on_test_epoch_start = on_validation_epoch_start

    def _log_latent_use(self, stage: str) -> None:
        if self._means:
            self.log_dict({f"{stage}/{k}": v for k, v in latent_use(torch.cat(self._means)).items()})
        self._means = []

    def on_validation_epoch_end(self) -> None:
        self._log_latent_use("val")
        super().on_validation_epoch_end()

    def on_test_epoch_end(self) -> None:
        self._log_latent_use("test")

    @torch.no_grad()
    def samples(self, per_row: int = 10, seed: int = 0) -> np.ndarray:
        """Images drawn from the prior, (rows * per_row, 1, H, W): one row per label for a CVAE, 10 rows
        otherwise."""
        g = torch.Generator(device="cpu").manual_seed(seed)
        rows = self.net.num_classes if self.net.conditional else 10
        y = torch.arange(rows, device=self.device).repeat_interleave(per_row) if self.net.conditional else None
        return self.net.sample(rows * per_row, y, generator=g).cpu().numpy()

    @torch.no_grad()
    def reconstructions(self, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        """Rows of originals over their mean reconstructions (eval mode: z = mu)."""
        was = self.training
        self.eval()
        logits = self(x, y)[0]
        self.train(was)
        return torch.cat([x, torch.sigmoid(logits)]).cpu().numpy()

    def _figures(self, client, run_id: str, epoch: int) -> None:
        x, y = self.trainer.datamodule.datasets["val"].tensors if self.trainer.datamodule else (None, None)
        if x is not None:
            n = 10
            client.log_image(run_id, image_grid(self.reconstructions(x[:n].to(self.device), y[:n].to(self.device)), 2),
                             key="reconstructions", step=epoch)
        if self.net.variational:
            client.log_image(run_id, image_grid(self.samples(), 10), key="samples", step=epoch)

    @torch.no_grad()
    def latents(self, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        """Encoder means mu(x), (N, latent_dim)."""
        return self.net.encode(x.to(self.device), y.to(self.device) if self.net.conditional else None)[0].cpu().numpy()

    def evaluation_outputs(self, dm, loader, split: str, out_dir: Path, title: str) -> EvalOutputs:
        """Lecture 8's unsupervised part on the latent space: K-means (k = number of classes) on the encoder
        means of ``split``, drawn in the first two principal components next to the true labels. Returns
        (true labels, cluster ids mapped to labels one-to-one by the Hungarian method, metrics
        ``<split>/kmeans_nmi`` and ``<split>/kmeans_acc``, figures: latent PCA, reconstructions, samples)."""
        from scipy.optimize import linear_sum_assignment
        from sklearn.cluster import KMeans
        from sklearn.decomposition import PCA
        from sklearn.metrics import confusion_matrix, normalized_mutual_info_score

        from dlzoo.report.plots import _plt, save

        plots = out_dir / "plots"
        x, y = dm.datasets[split].tensors
        z, labels = self.latents(x, y), y.numpy()
        k = dm.num_classes
        clusters = KMeans(k, n_init=10, random_state=0).fit_predict(z)
        rows, cols = linear_sum_assignment(-confusion_matrix(labels, clusters, labels=range(k)))  # max agreement
        mapped = np.empty(k, dtype=np.int64)
        mapped[cols] = rows
        preds = mapped[clusters]
        metrics = {f"{split}/kmeans_nmi": float(normalized_mutual_info_score(labels, clusters)),
                   f"{split}/kmeans_acc": float((preds == labels).mean())}
        plt = _plt()
        xy = PCA(2, random_state=0).fit_transform(z)  # (N, 2)
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
        for ax, colour, title in ((axes[0], preds, f"K-means clusters (NMI {metrics[f'{split}/kmeans_nmi']:.2f})"),
                                  (axes[1], labels, "true labels")):
            sc = ax.scatter(xy[:, 0], xy[:, 1], c=colour, cmap="tab10", s=6, vmin=0, vmax=k - 1)
            ax.set_title(title)
            ax.set_xlabel("PC 1")
            ax.set_ylabel("PC 2")
        fig.colorbar(sc, ax=axes[1], ticks=range(k))
        figures = [save(fig, plots / "latent_pca.png")]
        grids = {"reconstructions": (self.reconstructions(x[:10].to(self.device), y[:10].to(self.device)), 2)}
        if self.net.variational:
            grids["samples"] = (self.samples(), 10)
        for name, (images, n_rows) in grids.items():
            fig, ax = plt.subplots(figsize=(5, 0.5 + 5 * n_rows / 10))
            ax.imshow(image_grid(images, n_rows), cmap="gray", vmin=0, vmax=255)
            ax.set_axis_off()
            ax.set_title(name)
            figures.append(save(fig, plots / f"{name}.png"))
        return EvalOutputs(labels, preds, metrics, figures=figures)


def nearest_mode(samples: torch.Tensor, centers: torch.Tensor, std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(index of each sample's nearest mode, whether it lies within 3 std of it): (N,) each."""
    d_min, nearest = torch.cdist(samples.flatten(1).float(), centers.float()).min(1)  # (N,) each
    return nearest, d_min <= 3 * std


def mode_coverage(samples: torch.Tensor, centers: torch.Tensor, std: float, min_share: float = 0.01) -> dict[str, float]:
    """Sample quality on a mixture of isotropic Gaussians (the ring): ``hq`` = share of samples within 3 std
    of their nearest mode ("high quality", VEEGAN / Unrolled-GAN protocol); ``modes`` = number of modes
    holding at least ``min_share`` of all samples as high-quality ones (the papers count a mode with a single
    high-quality sample; a small share keeps a few stray points from counting as a mode).
    samples (N, 2), centers (K, 2)."""
    nearest, hq = nearest_mode(samples, centers, std)
    per_mode = torch.bincount(nearest[hq], minlength=len(centers))  # (K,)
    return {"modes": float((per_mode >= max(1.0, min_share * len(samples))).sum()), "hq": float(hq.float().mean())}


@register_task("gan")
class GANTask(Task, _FiguresMixin, pl.LightningModule):
    """Trains a ``dlzoo.models.generative.GAN`` with two optimizers (manual optimisation). Logged:
    ``train/d_loss``, ``train/g_loss`` (``train/loss`` = the D/critic loss), and on the ring
    ``val/modes``, ``val/hq``, ``test/modes``, ``test/hq`` from ``eval_samples`` generated points."""

    # the figure a run of this task is ranked and reported by: modes of the ring covered
    score_key = "test/modes"

    @classmethod
    def from_config(cls, cfg, net: nn.Module, num_classes: int, context: BuildContext):
        from dlzoo.tasks.options import partial, refuse_monitors, section

        gan = section(cfg, "gan")
        refuse_monitors(cfg, (), "set callbacks.<name>.monitor to val/modes or val/hq, or null (see "
                        "experiment=ring_wgan)", logged=("val/modes", "val/hq"))
        if cfg.data.name == "ring8":  # the modes that sample quality is measured against
            from dlzoo.data.synthetic import RING_STD, ring_centers

            gan.setdefault("centers", ring_centers().tolist())
            gan.setdefault("mode_std", RING_STD)
        return cls(net, optimizer=partial(cfg.optimizer), **gan)

    @staticmethod
    def example_input(net: nn.Module, input_shape: tuple[int, ...]) -> tuple:
        """The generator's forward takes latent codes, not samples."""
        return (net.example_input(1),)

    def __init__(self, net: nn.Module, optimizer: Callable, objective: str = "nonsaturating", n_critic: int = 1,
                 gradient_penalty: float = 0.0, clip: float | None = None, eval_samples: int = 2500,
                 centers: list[list[float]] | None = None, mode_std: float | None = None,
                 lr_decay: bool = False, figures_every_n_epochs: int = 10):
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer"])
        if objective not in ("nonsaturating", "wasserstein"):
            from dlzoo.errors import ConfigError

            raise ConfigError(f"gan.objective={objective!r} is unknown; choose one of: nonsaturating, wasserstein")
        self.automatic_optimization = False
        self.net = net
        self.optimizer_factory = optimizer

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def _z(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.net.latent_dim, device=self.device, dtype=self.dtype)  # bf16-true / 64-true too

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        d_real, d_fake = self.net.discriminate(real), self.net.discriminate(fake)  # (B,) each
        if self.hparams.objective == "nonsaturating":  # BCE(D(x), 1) + BCE(D(G(z)), 0) on logits
            return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        loss = d_fake.mean() - d_real.mean()  # minus the critic's Wasserstein estimate
        if self.hparams.gradient_penalty:
            eps = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device)
            mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
            grad, = torch.autograd.grad(self.net.discriminate(mix).sum(), mix, create_graph=True)
            loss = loss + self.hparams.gradient_penalty * (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
        return loss

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        d_fake = self.net.discriminate(fake)
        # non-saturating: -log sigmoid(D(G(z))) instead of log(1 - sigmoid(D(G(z)))), strong gradients early on
        return F.softplus(-d_fake).mean() if self.hparams.objective == "nonsaturating" else -d_fake.mean()

    def training_step(self, batch, batch_idx):
        real = batch[0]  # (B, *input_shape)
        opt_g, opt_d = self.optimizers()
        fake = self.net.generate(self._z(len(real))).detach()
        d_loss = self.d_loss(real, fake)
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        if self.hparams.clip:  # WGAN weight clipping (Arjovsky et al. 2017, Algorithm 1)
            with torch.no_grad():
                for p in self.net.discriminator.parameters():
                    p.clamp_(-self.hparams.clip, self.hparams.clip)
        self.log("train/d_loss", d_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/loss", d_loss, on_step=False, on_epoch=True)
        if (batch_idx + 1) % self.hparams.n_critic == 0:
            g_loss = self.g_loss(self.net.generate(self._z(len(real))))
            opt_g.zero_grad()
            self.manual_backward(g_loss)
            opt_g.step()
            self.log("train/g_loss", g_loss, on_step=False, on_epoch=True, prog_bar=True)
        return d_loss

    def _quality(self, stage: str) -> None:
        if self.hparams.centers is None:
            return
        g = torch.Generator(device="cpu").manual_seed(0)
        samples = self.net.sample(self.hparams.eval_samples, generator=g)
        q = mode_coverage(samples, torch.tensor(self.hparams.centers, device=samples.device), self.hparams.mode_std)
        self.log_dict({f"{stage}/{k}": v for k, v in q.items()})

    def validation_step(self, batch, batch_idx):
        pass  # sample quality is measured once per epoch, from generated points (on_validation_epoch_end)

    def test_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self) -> None:
        self._quality("val")
        super().on_validation_epoch_end()

    def on_test_epoch_end(self) -> None:
        self._quality("test")

    def _points(self) -> np.ndarray:
        g = torch.Generator(device="cpu").manual_seed(0)
        return self.net.sample(self.hparams.eval_samples, generator=g).flatten(1).cpu().numpy()  # (N, 2)

    def _scatter(self, title: str):
        from dlzoo.report.plots import _plt

        pts = self._points()
        fig, ax = _plt().subplots(figsize=(4, 4))
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4, label="generated")
        if self.hparams.centers is not None:
            c = np.asarray(self.hparams.centers)
            ax.scatter(c[:, 0], c[:, 1], marker="x", color="red", label="modes")
        ax.set_title(title)
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize=7)
        return fig

    def _figures(self, client, run_id: str, epoch: int) -> None:
        from dlzoo.report.plots import _plt

        fig = self._scatter(f"epoch {epoch}")
        client.log_figure(run_id, fig, f"samples/epoch_{epoch:04d}.png")
        _plt().close(fig)

    def evaluation_outputs(self, dm, loader, split: str, out_dir: Path, title: str) -> EvalOutputs:
        """The generated points' nearest mode (as "actual") against that mode if the point is within 3 std
        of it, else -1 (as "predicted"): the confusion plot shows coverage and quality per mode. No extra
        metrics (``*/modes`` and ``*/hq`` come from the test loop); the final scatter as figure."""
        from dlzoo.report.plots import save

        figures = [save(self._scatter(f"{self.hparams.eval_samples} samples"), out_dir / "plots" / "samples.png")]
        if self.hparams.centers is None:
            return EvalOutputs(np.zeros(0, np.int64), np.zeros(0, np.int64), figures=figures)
        nearest, hq = nearest_mode(torch.from_numpy(self._points()), torch.tensor(self.hparams.centers),
                                   self.hparams.mode_std)
        return EvalOutputs(nearest.numpy(), torch.where(hq, nearest, -1).numpy(), figures=figures)

    def on_train_epoch_end(self) -> None:
        for sched in self.lr_schedulers() or []:  # manual optimisation: the task steps its schedulers
            sched.step()

    def configure_optimizers(self):
        opts = [self.optimizer_factory(param_groups(net, 0.0)) for net in (self.net.generator, self.net.discriminator)]
        epochs = self.trainer.max_epochs if self._trainer is not None else None  # the run's length, if known
        if not (self.hparams.lr_decay and epochs):
            return opts
        # both learning rates fall linearly to 0 over the run: the adversarial game oscillates less at the end
        return opts, [torch.optim.lr_scheduler.LambdaLR(o, lambda e: 1.0 - e / epochs) for o in opts]
