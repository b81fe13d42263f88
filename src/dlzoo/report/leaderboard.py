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
SEEDS_DIR = "metrics-seeds"  # `make run-seeds` (seeds/dvc.yaml): metrics-seeds/<experiment>/s<seed>.json
SPREAD = "mean ± std (n)"  # the column of an experiment trained at more than one seed


def load_rows(metrics_dir: Path) -> list[dict]:
    """The metrics JSONs of ``metrics_dir``, and of the extra and claims suites beside it (``metrics-extra/``,
    ``metrics-claims/``) when they were run."""
    rows = []
    for f in [*sorted(metrics_dir.glob("*.json")), *sorted((metrics_dir.parent / EXTRA_DIR).glob("*.json")),
              *sorted((metrics_dir.parent / CLAIMS_DIR).glob("*.json"))]:
        row = json.loads(f.read_text())
        row.setdefault("name", f.stem)
        rows.append(row)
    attach_spread(rows, metrics_dir.parent / SEEDS_DIR)
    return rows


def attach_spread(rows: list[dict], seeds_dir: Path) -> None:
    """Each row's score over its own run and that experiment's runs at other seeds (``seeds_dir``), as
    ``<score>/mean``, ``<score>/std`` (sample standard deviation) and ``seeds`` (n), where there are any."""
    import statistics

    for row in rows:
        key = next((k for k in ("test/acc", "test/r2") if k in row), None)
        if key is None or not seeds_dir.is_dir():  # a detector's or generator's row: its own sections
            continue
        others = sorted((seeds_dir / str(row["name"])).glob("s*.json"))
        values = [float(row[key])] + [float(v) for f in others if (v := json.loads(f.read_text()).get(key)) is not None]
        if len(values) > 1:
            row.update({f"{key}/mean": statistics.fmean(values), f"{key}/std": statistics.stdev(values),
                        "seeds": len(values)})


def spread(row: dict, key: str) -> str:
    """``0.9812 ± 0.0041 (3)``, or "" for a row trained at one seed."""
    if not row.get("seeds") or f"{key}/mean" not in row:
        return ""
    return f"{row[f'{key}/mean']:.4f} ± {row[f'{key}/std']:.4f} ({row['seeds']})"


def columns(rows: list[dict], base: tuple[str, ...]) -> tuple[str, ...]:
    """``base``, with the spread column after the score where some row of the group has several seeds."""
    if not any(r.get("seeds") for r in rows):
        return base
    i = base.index(score_key(rows)) + 1
    return (*base[:i], SPREAD, *base[i:])


def cell(row: dict, column: str, key: str) -> str:
    return spread(row, key) if column == SPREAD else _fmt(row.get(column))


def by_dataset(rows: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        # comparisons, generative and detection runs (no accuracy or R^2 to rank by) have their own sections
        if "comparison" not in r and "claim" not in r and r.get("task") not in ("autoencode", "gan", "detect"):
            groups.setdefault(r.get("dataset", "?"), []).append(r)
    for g in groups.values():
        key = score_key(g)  # ranked by the mean over seeds where there is one
        g.sort(key=lambda r: -float(r.get(f"{key}/mean", r.get(key, float("-inf")))))
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
        cols = columns(rows, REGRESSION_COLUMNS if is_regression(rows) else COLUMNS)
        key = score_key(rows)
        out.append(f"### {dataset}\n")
        out.append("| " + " | ".join(cols) + " |")
        out.append("|" + "---|" * len(cols))
        for r in rows:
            out.append("| " + " | ".join(cell(r, c, key) for c in cols) + " |")
        out.append("")
    return "\n".join(out)


def console_table(groups: dict[str, list[dict]]) -> str:
    lines = []
    for dataset, rows in groups.items():
        key = score_key(rows)
        cols = columns(rows, ("name", "model", key, "num_params"))
        lines.append(f"{dataset}:")
        widths = [max(len(c), *(len(cell(r, c, key)) for r in rows)) for c in cols]
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(cols, widths)))
        for r in rows:
            lines.append("  " + "  ".join(cell(r, c, key).ljust(w) for c, w in zip(cols, widths)))
    return "\n".join(lines)
