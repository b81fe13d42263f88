"""Build the report from the evaluated experiments: ``python -m dlzoo.report``.

Writes ``reports/README.md`` (leaderboard per dataset), ``reports/leaderboard.json`` and
``reports/accuracy.png``, and prints the leaderboard. Imports neither Lightning nor torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dlzoo.paths import project_root
from dlzoo.report.leaderboard import by_dataset, console_table, load_rows, markdown

UI_HINT = "make ui   (or: mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000)"


def build(metrics_dir: Path, out: Path) -> dict[str, list[dict]]:
    from dlzoo.report.plots import bar_chart

    rows = load_rows(metrics_dir)
    if not rows:
        raise SystemExit(f"error: no metrics in {metrics_dir}: run `dvc repro` first")
    groups = by_dataset(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "leaderboard.json").write_text(json.dumps(groups, indent=2) + "\n")
    # classification rows only: a regression row has no accuracy (its R^2 is in the leaderboard table)
    acc_rows = [(d, r) for d, rs in groups.items() for r in rs if "test/acc" in r]
    names = [f"{r['name']} ({d})" for d, r in acc_rows]
    accs = [float(r["test/acc"]) for _, r in acc_rows]
    bar_chart(names, accs, out / "accuracy.png", xlabel="test accuracy", title="dlzoo leaderboard")
    from dlzoo.report.sections import SECTIONS

    extra = [text for section in SECTIONS if (text := section(rows, out))]
    (out / "README.md").write_text(
        "# dlzoo report\n\nTest-split results of the pipeline's experiments (`dvc repro`), best first. "
        "Every row links to its MLflow run by id.\n\n" + markdown(groups) + "\n![accuracy](accuracy.png)\n"
        + "".join(f"\n{t.rstrip()}\n" for t in extra))
    return groups


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metrics-dir", type=Path, default=None, help="folder of metrics JSONs (default: metrics/)")
    ap.add_argument("--out", type=Path, default=None, help="report folder (default: reports/)")
    ap.add_argument("--print-only", action="store_true", help="print the leaderboard, write nothing")
    args = ap.parse_args(argv)
    root = project_root()
    metrics_dir = args.metrics_dir or root / "metrics"
    if args.print_only:
        rows = load_rows(metrics_dir)
        if not rows:
            sys.exit(f"error: no metrics in {metrics_dir}: run `dvc repro` first")
        groups = by_dataset(rows)
    else:
        groups = build(metrics_dir, args.out or root / "reports")
    print("\nLeaderboard (test split):")
    print(console_table(groups))
    print(f"\nMLflow UI: {UI_HINT}")


if __name__ == "__main__":
    main()
