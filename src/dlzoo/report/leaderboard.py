"""The leaderboard: one row per evaluated experiment, grouped by dataset, best test accuracy first."""

from __future__ import annotations

import json
from pathlib import Path

COLUMNS = ("name", "model", "test/acc", "test/f1_macro", "test/loss", "num_params", "epochs", "run_id")


def load_rows(metrics_dir: Path) -> list[dict]:
    rows = []
    for f in sorted(metrics_dir.glob("*.json")):
        row = json.loads(f.read_text())
        row.setdefault("name", f.stem)
        rows.append(row)
    return rows


def by_dataset(rows: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r.get("dataset", "?"), []).append(r)
    for g in groups.values():
        g.sort(key=lambda r: -float(r.get("test/acc", 0.0)))
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
        out.append(f"### {dataset}\n")
        out.append("| " + " | ".join(COLUMNS) + " |")
        out.append("|" + "---|" * len(COLUMNS))
        for r in rows:
            out.append("| " + " | ".join(_fmt(r.get(c)) for c in COLUMNS) + " |")
        out.append("")
    return "\n".join(out)


def console_table(groups: dict[str, list[dict]]) -> str:
    cols = ("name", "model", "test/acc", "num_params")
    lines = []
    for dataset, rows in groups.items():
        lines.append(f"{dataset}:")
        widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in cols]
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(cols, widths)))
        for r in rows:
            lines.append("  " + "  ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(cols, widths)))
    return "\n".join(lines)
