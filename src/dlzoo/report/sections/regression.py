"""Report section of the regression experiments: SGD-trained linear regression next to its closed-form
least-squares solution (rows with ``test/r2_closed_form``, written by the test evaluation (dlzoo.evaluate))."""

from __future__ import annotations

from pathlib import Path


def linear_vs_closed_form(rows: list[dict], out_dir: Path, metrics_dir: Path | None = None) -> str | None:
    rows = [r for r in rows if "test/r2_closed_form" in r]
    if not rows:
        return None
    lines = ["## Linear regression: SGD vs the closed form", "",
             "The same linear model trained by mini-batch SGD (early-stopped on val/loss) and solved exactly by "
             "least squares on the same standardised training features.", "",
             "| experiment | test R² (SGD) | test R² (closed form) | test RMSE (SGD) | test RMSE (closed form) "
             "| ‖w_sgd − w_ls‖ / ‖w_ls‖ |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['test/r2']:.4f} | {r['test/r2_closed_form']:.4f} | {r['test/rmse']:.2f} "
                     f"| {r['test/rmse_closed_form']:.2f} | {r['linear/weight_gap_to_closed_form']:.3f} |")
    return "\n".join(lines) + "\n"
