"""Build the report from the evaluated experiments and the MLflow store: ``python -m dlzoo.report``.

Writes ``reports/index.html`` (open it in a browser, no server needed) and ``reports/README.md`` with the
same content: a leaderboard per dataset (model, key config, test metrics, parameters, FLOPs, training time,
MLflow run id), validation curves overlaid per dataset, accuracy vs parameters, and the sections of every
model family (compression Pareto fronts, sequences, comparisons, ...); plus ``reports/leaderboard.json``
and the PNG plots. ``--print-only`` prints the leaderboard and writes nothing. Imports neither Lightning
nor torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dlzoo.paths import project_root
from dlzoo.report.html import TITLE, to_html
from dlzoo.report.leaderboard import by_dataset, console_table, load_rows, markdown, score_key

UI_HINT = "`make ui`, then"


def _plots(groups: dict[str, list[dict]], out: Path) -> list[str]:
    """Overlaid validation curves per dataset and accuracy vs parameters; Markdown image lines."""
    from dlzoo.report.plots import bar_chart, overlay, scatter

    lines = []
    for dataset, rows in groups.items():
        curves = {r["name"]: r["curve"] for r in rows if r.get("curve")}
        if curves:
            metric = next(r["curve_metric"] for r in rows if r.get("curve"))
            path = overlay(curves, out / f"curves_{dataset}.png", ylabel=metric,
                           title=f"{dataset}: {metric} per epoch (from MLflow)")
            lines.append(f"![{dataset} learning curves]({path.name})")
    # classification rows only: a regression row has no accuracy (its R^2 is in the leaderboard table)
    acc_rows = [(d, r) for d, rs in groups.items() for r in rs if "test/acc" in r]
    if acc_rows:
        names = [f"{r['name']} ({d})" for d, r in acc_rows]
        accs = [float(r["test/acc"]) for _, r in acc_rows]
        bar_chart(names, accs, out / "accuracy.png", xlabel="test accuracy", title="dlzoo leaderboard")
        lines.append("![accuracy](accuracy.png)")
        sized = [(n, r["num_params"], a) for n, (_, r), a in zip(names, acc_rows, accs) if r.get("num_params")]
        if sized:
            scatter([p for _, p, _ in sized], [a for _, _, a in sized], [n for n, _, _ in sized],
                    out / "accuracy_vs_params.png", xlabel="parameters (log scale)", ylabel="test accuracy",
                    title="test accuracy vs parameters")
            lines.append("![accuracy vs parameters](accuracy_vs_params.png)")
    return lines


def build(metrics_dir: Path, out: Path, tracking_uri: str | None = None) -> dict[str, list[dict]]:
    from dlzoo.report.store import enrich

    rows = load_rows(metrics_dir)
    if not rows:
        raise SystemExit(f"error: no metrics in {metrics_dir}: run `dvc repro` first")
    for warning in enrich(rows, tracking_uri):
        print(f"warning: {warning}", file=sys.stderr)
    groups = by_dataset(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "leaderboard.json").write_text(json.dumps(groups, indent=2) + "\n")
    images = _plots(groups, out)
    from dlzoo.report.sections import SECTIONS

    extra = [text for section in SECTIONS if (text := section(rows, out, metrics_dir=metrics_dir))]
    ranked = ", ".join(f"{d} by {score_key(rs)}" for d, rs in groups.items())
    notes = ("Where an experiment was trained at several seeds (`make run-seeds`), *mean ± std (n)* is over its own "
             "run and those (sample standard deviation), and the ranking uses the mean. "
             if any(r.get("seeds") for rs in groups.values() for r in rs) else "")
    machines = sorted({r["machine"] for rs in groups.values() for r in rs if r.get("machine")})
    notes += f"Trained on: {'; '.join(machines)}. " if machines else ""
    text = (f"# {TITLE}\n\nTest-split results of the pipeline's experiments (`dvc repro`), best first ({ranked}). "
            "Every row names its MLflow run (`make ui`, then search `attributes.run_id = '<id>'`); config, FLOPs "
            f"and training time (s) are read from that run. {notes}\n\n"
            + markdown(groups) + "\n" + "\n\n".join(images) + "\n"
            + "".join(f"\n{t.rstrip()}\n" for t in extra))
    (out / "README.md").write_text(text)
    (out / "index.html").write_text(to_html(text))
    return groups


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metrics-dir", type=Path, default=None, help="folder of metrics JSONs (default: metrics/)")
    ap.add_argument("--out", type=Path, default=None, help="report folder (default: reports/)")
    ap.add_argument("--print-only", action="store_true", help="print the leaderboard, write nothing")
    ap.add_argument("--quiet", action="store_true",
                    help="write the report without printing the leaderboard (the pipeline's stage: `make run` "
                         "prints it once, after `dvc repro`, also when the stage was up to date)")
    ap.add_argument("--tracking-uri", default=None,
                    help="MLflow store to read runs from (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    args = ap.parse_args(argv)
    root = project_root()
    metrics_dir = args.metrics_dir or root / "metrics"
    out = args.out or root / "reports"
    if args.print_only:
        rows = load_rows(metrics_dir)
        if not rows:
            sys.exit(f"error: no metrics in {metrics_dir}: run `dvc repro` first")
        groups = by_dataset(rows)
    else:
        groups = build(metrics_dir, out, args.tracking_uri)
    if not args.quiet:
        print("\nLeaderboard (test split):")
        print(console_table(groups))
        from dlzoo.tracking import mlflow_utils as mu

        links = mu.experiment_links(mu.tracking_uri(args.tracking_uri))
        if links:
            print("\nMLflow experiments (Model-training view):")
            print("\n".join(f"  {link}" for link in links))
    print(where_line(out, root))


def where_line(out: Path, root: Path) -> str:
    """The last line a report command prints: where the report and the MLflow UI are."""
    from dlzoo.tracking.mlflow_utils import ui_url

    page = out / "index.html"
    shown = page.relative_to(root) if page.is_relative_to(root) else page
    report = f"Report: {shown}" if page.exists() else "Report: not built yet (`dvc repro report`)"
    return f"\n{report} | MLflow UI: {UI_HINT} {ui_url()}"


if __name__ == "__main__":
    main()
