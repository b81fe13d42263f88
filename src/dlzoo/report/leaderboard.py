"""The leaderboard: one row per evaluated experiment, grouped by dataset, best first (test accuracy; test R^2
for regression datasets). Comparison results (``metrics/compare_*.json``) are report sections, not rows."""

from __future__ import annotations

import json
from pathlib import Path

# config, flops, train_time_s and status come from the run in the MLflow store (dlzoo.report.store.enrich)
COLUMNS = ("name", "model", "config", "test/acc", "test/f1_macro", "test/loss", "num_params", "flops", "epochs",
           "train_time_s", "run_id")
REGRESSION_COLUMNS = ("name", "model", "config", "test/r2", "test/rmse", "test/mae", "test/loss", "num_params", "flops",
                      "epochs", "train_time_s", "run_id")


def is_regression(rows: list[dict]) -> bool:
    return any("test/r2" in r for r in rows)


def score_key(rows: list[dict]) -> str:
    """The figure a dataset's rows are ranked by (higher is better)."""
    return "test/r2" if is_regression(rows) else "test/acc"


EXTRA_DIR = "metrics-extra"  # the extra suite's metrics (extra/dvc.yaml), next to metrics/
CLAIMS_DIR = "metrics-claims"  # the lecture-claims suite's verdicts (claims/dvc.yaml, dlzoo.claims), next to metrics/


def load_rows(metrics_dir: Path) -> list[dict]:
    """The metrics JSONs of ``metrics_dir``, and of the extra and claims suites beside it (``metrics-extra/``,
    ``metrics-claims/``) when they were run."""
    rows = []
    for f in [*sorted(metrics_dir.glob("*.json")), *sorted((metrics_dir.parent / EXTRA_DIR).glob("*.json")),
              *sorted((metrics_dir.parent / CLAIMS_DIR).glob("*.json"))]:
        row = json.loads(f.read_text())
        row.setdefault("name", f.stem)
        rows.append(row)
    return rows


def by_dataset(rows: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        # comparisons, generative and detection runs (no accuracy or R^2 to rank by) have their own sections
        if "comparison" not in r and "claim" not in r and r.get("task") not in ("autoencode", "gan", "detect"):
            groups.setdefault(r.get("dataset", "?"), []).append(r)
    for g in groups.values():
        key = score_key(g)
        g.sort(key=lambda r: -float(r.get(key, float("-inf"))))
    return dict(sorted(groups.items()))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)


def markdown(groups: dict[str, list[dict]]) -> str:
    out = []
    for dataset, rows in groups.items():
        columns = REGRESSION_COLUMNS if is_regression(rows) else COLUMNS
        out.append(f"### {dataset}\n")
        out.append("| " + " | ".join(columns) + " |")
        out.append("|" + "---|" * len(columns))
        for r in rows:
            out.append("| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |")
        out.append("")
    return "\n".join(out)


def console_table(groups: dict[str, list[dict]]) -> str:
    lines = []
    for dataset, rows in groups.items():
        cols = ("name", "model", score_key(rows), "num_params")
        lines.append(f"{dataset}:")
        widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in cols]
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(cols, widths)))
        for r in rows:
            lines.append("  " + "  ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(cols, widths)))
    return "\n".join(lines)
