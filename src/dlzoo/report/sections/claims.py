"""The lecture-claims section (``metrics-claims/*.json``, made by ``dlzoo.claims``): a verdict table in the main
report and ``claims.md`` with every claim's checks (mean with its 95% interval over seeds, the seeds a decisive
answer would need, per-seed values), a figure of each check's interval against its threshold, its runs and a
plot of the curve the claim is about (mean over seeds per variant; thin lines are single seeds)."""

from __future__ import annotations

import statistics
from pathlib import Path

MARK = {"holds": "✅ holds", "does not hold": "❌ does not hold", "partly holds": "◐ partly holds",
        "inconclusive": "❔ inconclusive", "unclear": "❔ unclear"}
COLOR = {"holds": "tab:green", "does not hold": "tab:red"}  # anything else (inconclusive): grey


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


def _interval_plot(claim: dict, path: Path) -> Path | None:
    """One row per check: the per-seed values (dots), the mean with its interval (bar) and the threshold (dashed)."""
    from dlzoo.claims.verdict import parse_expectation
    from dlzoo.report.plots import _plt, save

    checks = [c for c in claim["checks"] if c.get("mean") is not None]
    if not checks:
        return None
    plt = _plt()
    fig, axes = plt.subplots(len(checks), 1, figsize=(7, 0.3 + 0.95 * len(checks)), squeeze=False)
    for ax, c in zip(axes[:, 0], checks):
        color = COLOR.get(c["verdict"], "tab:gray")
        seeds = [v for v in c["values"].values() if v is not None]
        ax.plot(seeds, [0] * len(seeds), "o", color="black", alpha=0.35, ms=4)
        if c.get("ci_low") is not None:
            ax.plot([c["ci_low"], c["ci_high"]], [0, 0], color=color, lw=5, alpha=0.6, solid_capstyle="butt")
        ax.plot([c["mean"]], [0], "D", color=color, ms=7)
        ax.axvline(parse_expectation(c["expect"])[1], color="tab:red", ls="--", lw=1)
        ax.set_yticks([])
        ax.set_title(f"{c['label'][:95]} — {c['verdict']} (expected {c['expect']})", fontsize=7, loc="left")
        ax.tick_params(axis="x", labelsize=7)
    return save(fig, path)


def _interval(c: dict) -> str:
    if c.get("method") is None:  # a result written before intervals were recorded
        s = c.get("summary")
        return f"{s['mean']:.4g} ± {s['std']:.2g} ({s['n']})" if s else "n/a"
    if not c.get("n"):
        return "n/a"
    if c["ci_low"] is None or c["method"] == "exact":
        return f"{c['mean']:.4g} ({c['method'] if c['method'] == 'exact' else 'one seed'})"
    return f"{c['mean']:.4g} [{c['ci_low']:.4g}, {c['ci_high']:.4g}] ({c['n']})"


def _verdict_cell(c: dict) -> str:
    runs = c.get("by_run")  # a combined result (e.g. 1 and 2 threads): each run's verdict
    return c["verdict"] + (" (" + "; ".join(f"{k}: {r['verdict']}" for k, r in runs.items()) + ")" if runs else "")


def _checks_table(claim: dict) -> list[str]:
    lines = ["| check | expected | mean [95% CI] (n) | n needed | per seed | verdict |", "|---|---|---|---|---|---|"]
    for c in claim["checks"]:
        per_seed = ", ".join(_fmt(v) for v in c["values"].values())
        need = c.get("n_needed") if c.get("verdict") not in ("holds", "does not hold") else None
        lines.append(f"| {c['label']} | {c['expect']} | {_interval(c)} | {need or '–'} | {per_seed} | "
                     f"{_verdict_cell(c)} |")
    return lines


def _claim_md(claim: dict, out_dir: Path) -> str:
    lines = [f"## {claim.get('number', '')}. {claim['title']} — {MARK.get(claim['verdict'], claim['verdict'])}", "",
             f"> {claim['statement']}", "", f"Lecture: {claim.get('lecture') or '–'}. MLflow parent run "
             f"`{claim['parent_run_id']}` (experiment `claims`)"
             + (f"; seeds {claim['seeds']}." if claim["variants"] else "; read from the pipeline's results: "
                + ", ".join(f"`{p}`" for p in claim["inputs"].values()) + "."), ""]
    if claim.get("verdicts_by_run"):
        lines += ["Verdicts by run: " + "; ".join(f"{k}: {v}" for k, v in claim["verdicts_by_run"].items())
                  + " (a verdict that differs between them is inconclusive).", ""]
    if claim.get("notes"):
        lines += [claim["notes"], ""]
    lines += _checks_table(claim)
    bars = _interval_plot(claim, out_dir / "claims" / f"{claim['claim']}-intervals.png")
    if bars is not None:
        lines += ["", f"![{claim['claim']}: intervals](claims/{bars.name})"]
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


def section(rows: list[dict], out_dir: Path, metrics_dir: Path | None = None) -> str | None:
    claims = sorted((r for r in rows if "claim" in r and "verdict" in r), key=lambda r: (r.get("number", 99), r["claim"]))
    if not claims:
        return None
    counts = {v: sum(c["verdict"] == v for c in claims) for v in MARK}
    text = ("# Lecture claims\n\nEach claim of the lecture notes run as an experiment (`make claims`; "
            "`python -m dlzoo.claims NAME`), judged by its checks. Each check's statistic is measured per seed (every seed "
            "trains every variant) and its mean gets a 95% paired t interval: the check holds when the whole interval "
            "lies on the expected side of the threshold, does not hold when it lies wholly on the other side, and is "
            "inconclusive when it straddles it (n needed: the seeds a decisive answer would take at the observed "
            "spread). A claim holds when all its checks hold, does not hold when none does, partly holds when some "
            "hold and others do not, and is inconclusive otherwise.\n\n"
            + "\n".join(_claim_md(c, out_dir) for c in claims))
    from dlzoo.report.html import to_html

    (out_dir / "claims.md").write_text(text)
    (out_dir / "claims.html").write_text(to_html(text, "dlzoo lecture claims"))
    table = ["| # | claim | verdict |", "|---|---|---|"]
    table += [f"| {c.get('number', '')} | {c['statement']} | {MARK.get(c['verdict'], c['verdict'])} |" for c in claims]
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    return (f"## Lecture claims\n\n{len(claims)} claims of the lecture notes tested on real runs ({summary}); "
            "checks, figures per seed and plots: [claims.md](claims.md) ([as HTML](claims.html)).\n\n" + "\n".join(table) + "\n")
