"""Report section of the Hessian probe (lecture 002 §1.1, critical points): for every run trained with the
``HessianSpectrum`` callback (``row["hessian"]``, read from its MLflow run by ``dlzoo.report.store.enrich``), the
extreme eigenvalues of the training loss's Hessian at the final weights, the share of negative ones, and what
the lecture's test makes of them; where the probe also ran during training, the spectrum along the way."""

from __future__ import annotations

from pathlib import Path

# λ_min counts as negative below -NEGATIVE_TOL · λ_max: Lanczos' extreme eigenvalues are accurate to a small
# fraction of the spectrum's width, so a λ_min of -1e-6 · λ_max is a zero eigenvalue, not negative curvature.
NEGATIVE_TOL = 1e-3


def reading(hessian: dict) -> str:
    """The lecture's test on the Hessian at a point where training stopped: all eigenvalues positive → local
    minimum; some negative → saddle point (the point is critical only where the gradient vanishes too)."""
    if hessian["min"] < -NEGATIVE_TOL * abs(hessian["max"]):
        return "saddle point: directions of negative curvature remain"
    return "local minimum: no negative curvature found"


def _path_plot(rows: list[dict], path: Path) -> Path:
    from dlzoo.report.plots import _plt, save

    plt = _plt()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    for r in rows:
        curves = r["hessian"]["path"]
        for key, style in (("max", "-"), ("min", "--")):
            if curves.get(key):
                steps, values = zip(*curves[key])
                top.plot(steps, values, style, marker=".", label=f"{r['name']} λ_{key}")
        if curves.get("neg_fraction"):
            steps, values = zip(*curves["neg_fraction"])
            bottom.plot(steps, values, marker=".", label=r["name"])
    top.set_yscale("symlog", linthresh=1e-2)
    top.axhline(0, color="grey", lw=0.8)
    top.set_ylabel("eigenvalue")
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    bottom.set_ylabel("share of negative eigenvalues")
    bottom.set_xlabel("training step")
    bottom.grid(alpha=0.3)
    top.set_title("Hessian of the training loss during training")
    return save(fig, path)


def section(rows: list[dict], out_dir: Path, metrics_dir: Path | None = None) -> str | None:
    rows = [r for r in rows if r.get("hessian")]
    if not rows:
        return None
    lines = ["## Critical points: the Hessian at the end of training", "",
             "Where training stops, the gradient is (nearly) zero; the Hessian of the training loss tells a local "
             "minimum (every eigenvalue positive) from a saddle point (some negative). Extreme eigenvalues by "
             "Lanczos on Hessian-vector products, the share of negative eigenvalues by stochastic Lanczos quadrature "
             "(exact from the full Hessian for small models), on the first training samples "
             "(`dlzoo.training.probes.HessianSpectrum`).", "",
             "| experiment | λ_max | λ_min | negative share | reading |", "|---|---|---|---|---|"]
    for r in rows:
        h = r["hessian"]
        lines.append(f"| {r['name']} | {h['max']:.4g} | {h['min']:.4g} | {h['neg_fraction']:.3f} | {reading(h)} |")
    traced = [r for r in rows if any(len(v) > 1 for v in r["hessian"].get("path", {}).values())]
    if traced:
        _path_plot(traced, out_dir / "hessian.png")
        lines += ["", "![the Hessian's spectrum during training](hessian.png)"]
    return "\n".join(lines) + "\n"
