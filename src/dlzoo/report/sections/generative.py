"""Report section of the generative experiments: reconstruction / KL / ELBO of the autoencoders
(rows of task ``autoencode``), sample quality scored by the digits classifier (``metrics/samples/*.json``,
the `sample_quality` stages), the β-VAE sweep (``compare_beta_vae``), and GAN vs WGAN on the ring
(rows of task ``gan``; over seeds: ``compare_gan_seeds``)."""

from __future__ import annotations

import json
from pathlib import Path

from dlzoo.paths import suite_metrics_dirs


def _f(v, fmt: str = ".4f") -> str:
    return format(v, fmt) if isinstance(v, (int, float)) else ""


def _beta_plot(variants: dict, path: Path) -> Path:
    from dlzoo.report.plots import _plt, save

    betas = sorted(variants, key=lambda v: float(v.split("_")[1]))
    xs = [float(b.split("_")[1]) for b in betas]
    fig, ax = _plt().subplots(figsize=(5.5, 3.8))
    ax.plot(xs, [variants[b]["val/kl"] for b in betas], marker="o", label="KL (nats)")
    ax.plot(xs, [variants[b]["val/recon"] for b in betas], marker="s", label="reconstruction (nats)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("β")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("β-VAE on digits: validation KL and reconstruction")
    return save(fig, path)


def _latent_use(rows: list[dict]) -> list[str]:
    """Latent-space use of the autoencoders that measured it (a Tilted VAE's codes should sit on its shell)."""
    if not rows:
        return []
    out = ["**Latent-space use** (test split): active units = latent dimensions whose encoder mean varies with "
           "the input (Cov_x(mu_j(x)) > 0.01); ‖mu(x)‖ mean ± std = where the codes sit (a Tilted VAE's on a "
           "shell of radius ≈ τ, a VAE's near the centre).", "",
           "| experiment | model | active units | ‖mu(x)‖ mean ± std |", "|---|---|---|---|"]
    out += [f"| {r['name']} | {r['model']} | {_f(r['test/active_units'], '.0f')} "
            f"| {_f(r.get('test/z_norm_mean'), '.2f')} ± {_f(r.get('test/z_norm_std'), '.2f')} |" for r in rows]
    return [*out, ""]


def generative(rows: list[dict], out_dir: Path, metrics_dir: Path | None = None) -> str | None:
    ae = [r for r in rows if r.get("task") == "autoencode"]
    gan = [r for r in rows if r.get("task") == "gan"]
    beta = next((r for r in rows if r.get("comparison") == "beta_vae"), None)
    seeds = next((r for r in rows if r.get("comparison") == "gan_seeds"), None)
    folders = [d / "samples" for d in suite_metrics_dirs(metrics_dir)]  # default and extra suites
    samples = [json.loads(f.read_text()) for d in folders if d.is_dir() for f in sorted(d.glob("*.json"))]
    if not (ae or gan or beta or seeds or samples):
        return None
    out = ["## Generative models (AE, VAE, CVAE, β-VAE, GAN, WGAN)", ""]
    if ae:
        out += ["Test split; reconstruction and KL in nats per image (Bernoulli pixels), ELBO = −(recon + KL); "
                "MSE per pixel of the mean reconstruction; K-means (k = 10) on the encoder means vs the labels "
                "(NMI, and accuracy after matching clusters to labels). Latent PCA plots, sample grids and "
                "reconstructions are in each MLflow run (`plots/`).", "",
                "| experiment | model | recon | KL | ELBO | MSE/pixel | K-means NMI | K-means acc | MLflow run |",
                "|---|---|---|---|---|---|---|---|---|"]
        out += [f"| {r['name']} | {r['model']} | {_f(r.get('test/recon'), '.2f')} | {_f(r.get('test/kl'), '.2f')} "
                f"| {_f(r.get('test/elbo'), '.2f')} | {_f(r.get('test/mse'))} | {_f(r.get('test/kmeans_nmi'), '.3f')} "
                f"| {_f(r.get('test/kmeans_acc'), '.3f')} | `{r['run_id']}` |" for r in ae]
        out.append("")
        out += _latent_use([r for r in ae if r.get("test/active_units") is not None])
    if samples:
        out += ["**Sample quality**, scored by the pipeline's digits classifier: share of samples classified as "
                "the requested digit (bar ≥ 0.95), and the Fréchet distance to the test digits in the "
                "classifier's feature space, next to real validation digits (a perfect sampler) and a "
                "collapsed sampler (the average digit of each label).", "",
                "| experiment | classifier | acc (requested) | FD | FD real val | FD collapsed |", "|---|---|---|---|---|---|"]
        out += [f"| {s['name']} | {Path(s['classifier']).name} | {_f(s.get('samples/acc'), '.3f')} "
                f"| {_f(s['samples/fd'], '.2f')} | {_f(s['samples/fd_val'], '.2f')} | {_f(s['samples/fd_collapsed'], '.2f')} |"
                for s in samples]
        out.append("")
    if beta:
        v = beta["variants"]
        _beta_plot(v, out_dir / "beta_vae.png")
        out += [f"**{beta['title']}** (MLflow parent run `{beta['parent_run_id']}`):", "",
                "| variant | val KL | val recon | val ELBO |", "|---|---|---|---|"]
        out += [f"| {k} | {_f(r.get('val/kl'), '.2f')} | {_f(r.get('val/recon'), '.2f')} | {_f(r.get('val/elbo'), '.2f')} |"
                for k, r in v.items()]
        out += ["", "![beta_vae](beta_vae.png)", ""]
    if gan:
        out += ["**GAN vs WGAN on the ring of 8 Gaussians** (test: 2500 generated points; a mode is covered when "
                "≥ 1% of the points lie within 3σ of it; bar for WGAN: 8/8 and ≥ 40% within 3σ).", "",
                "| experiment | modes covered | share within 3σ | MLflow run |", "|---|---|---|---|"]
        out += [f"| {r['name']} | {_f(r.get('test/modes'), '.0f')}/8 | {_f(r.get('test/hq'), '.3f')} | `{r.get('run_id', '')}` |"
                for r in gan]
        out.append("")
    if seeds:
        out += [f"**{seeds['title']}** (MLflow parent run `{seeds['parent_run_id']}`):", "",
                "| variant | modes covered | share within 3σ |", "|---|---|---|"]
        out += [f"| {k} | {_f(r.get('val/modes'), '.0f')}/8 | {_f(r.get('val/hq'), '.3f')} |" for k, r in seeds["variants"].items()]
        out.append("")
    return "\n".join(out)
