"""The lecture-claims section (``metrics-claims/*.json``, made by ``dlzoo.claims``): a verdict table in the main
report and ``claims.md`` with every claim's checks (mean ± spread over seeds, per-seed values), its runs and a
plot of the curve the claim is about (mean over seeds per variant; thin lines are single seeds)."""

from __future__ import annotations

import statistics
from pathlib import Path

MARK = {"holds": "✅ holds", "does not hold": "❌ does not hold", "partly holds": "◐ partly holds", "unclear": "❔ unclear"}


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _curve_plot(claim: dict, path: Path) -> Path | None:
    from dlzoo.report.plots import _plt, save

    plot = claim.get("plot") or {}
    key = plot.get("curve")
    if not key or not claim["variants"]:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, (vname, by_seed) in enumerate(claim["variants"].items()):
        color = f"C{i % 10}"
        runs = [r["curves"][key] for r in by_seed.values() if r.get("curves", {}).get(key)]
        for ys in runs:
            ax.plot(range(1, len(ys) + 1), ys, color=color, alpha=0.3, lw=0.8)
        if runs:
            n = min(len(ys) for ys in runs)
            ax.plot(range(1, n + 1), [statistics.fmean(ys[e] for ys in runs) for e in range(n)], color=color,
                    marker=".", label=vname)
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    if plot.get("log"):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(claim["title"], fontsize=10)
    return save(fig, path)


def _claim_md(claim: dict, out_dir: Path) -> str:
    lines = [f"## {claim.get('number', '')}. {claim['title']} — {MARK.get(claim['verdict'], claim['verdict'])}", "",
             f"> {claim['statement']}", "", f"Lecture: {claim.get('lecture') or '–'}. MLflow parent run "
             f"`{claim['parent_run_id']}` (experiment `claims`)"
             + (f"; seeds {claim['seeds']}." if claim["variants"] else "; read from the pipeline's results: "
                + ", ".join(f"`{p}`" for p in claim["inputs"].values()) + "."), ""]
    if claim.get("notes"):
        lines += [claim["notes"], ""]
    lines += ["| check | expected | mean ± std (n) | per seed | verdict |", "|---|---|---|---|---|"]
    for c in claim["checks"]:
        s = c["summary"]
        spread = f"{s['mean']:.4g} ± {s['std']:.2g} ({s['n']})" if s else "n/a"
        per_seed = ", ".join(_fmt(v) for v in c["values"].values())
        lines.append(f"| {c['label']} | {c['expect']} | {spread} | {per_seed} | {c['verdict']} |")
    if claim["variants"]:
        lines += ["", "| variant | val/acc | train/acc | epochs | seconds | diverged |", "|---|---|---|---|---|---|"]
        for vname, by_seed in claim["variants"].items():
            def mean(key: str) -> str:
                vals = [r[key] for r in by_seed.values() if isinstance(r.get(key), (int, float))]
                return f"{statistics.fmean(vals):.4g}" if vals else "–"
            lines.append(f"| {vname} | {mean('val/acc')} | {mean('train/acc')} | {mean('epochs')} | {mean('seconds')} "
                         f"| {sum(int(r.get('diverged', 0)) for r in by_seed.values())}/{len(by_seed)} |")
    image = _curve_plot(claim, out_dir / "claims" / f"{claim['claim']}.png")
    if image is not None:
        lines += ["", f"![{claim['claim']}](claims/{image.name})"]
    return "\n".join(lines) + "\n"


def section(rows: list[dict], out_dir: Path) -> str | None:
    claims = sorted((r for r in rows if "claim" in r and "verdict" in r), key=lambda r: (r.get("number", 99), r["claim"]))
    if not claims:
        return None
    counts = {v: sum(c["verdict"] == v for c in claims) for v in MARK}
    text = ("# Lecture claims\n\nEach claim of the lecture notes run as an experiment (`make claims`; "
            "`python -m dlzoo.claims NAME`), judged by its checks: holds = every seed meets every check's expectation, "
            "does not hold = none does, partly = some checks hold and others do not, unclear = the seeds disagree.\n\n"
            + "\n".join(_claim_md(c, out_dir) for c in claims))
    from dlzoo.report.cli import to_html

    (out_dir / "claims.md").write_text(text)
    (out_dir / "claims.html").write_text(to_html(text, "dlzoo lecture claims"))
    table = ["| # | claim | verdict |", "|---|---|---|"]
    table += [f"| {c.get('number', '')} | {c['statement']} | {MARK.get(c['verdict'], c['verdict'])} |" for c in claims]
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    return (f"## Lecture claims\n\n{len(claims)} claims of the lecture notes tested on real runs ({summary}); "
            "checks, figures per seed and plots: [claims.md](claims.md) ([as HTML](claims.html)).\n\n" + "\n".join(table) + "\n")
