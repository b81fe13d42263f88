"""Report section: the architectures side by side -- test accuracy, parameters, FLOPs of one inference
forward pass (torch.utils.flop_counter) and wall time per training epoch, per dataset."""

from __future__ import annotations

from pathlib import Path

COLUMNS = ("name", "model", "test/acc", "params", "MFLOPs", "s/epoch", "epochs")


def _cells(r: dict) -> list[str]:
    t = r.get("epoch_time_s")
    return [str(r.get("name", "")), str(r.get("model", "")), f"{float(r.get('test/acc', 0.0)):.4f}",
            f"{int(r['num_params']):,}" if r.get("num_params") is not None else "", f"{r['flops'] / 1e6:.2f}",
            f"{t:.2f}" if t is not None else "", str(r.get("epochs", ""))]


def architectures(rows: list[dict], out_dir: Path, metrics_dir: Path | None = None) -> str | None:
    from dlzoo.report.plots import scatter

    # classifiers only: detection (mAP), GANs/autoencoders (no accuracy) and regression have their own sections
    measured = [r for r in rows if r.get("flops") and "test/acc" in r and r.get("task", "classify") == "classify"]
    if not measured:
        return None
    lines = ["## Architectures", "",
             "Per experiment: test accuracy, parameters, FLOPs of one forward pass on one sample (inference, so "
             "auxiliary heads excluded; 2 per multiply-add), and the wall time of one training epoch (training + "
             "validation) on the machine that ran `dvc repro`.", ""]
    datasets = sorted({r.get("dataset", "?") for r in measured})
    for dataset in datasets:
        group = sorted((r for r in measured if r.get("dataset", "?") == dataset), key=lambda r: -float(r.get("test/acc", 0)))
        lines += [f"### {dataset}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(_cells(r)) + " |" for r in group]
        plot = scatter([r["flops"] for r in group], [float(r.get("test/acc", 0)) for r in group],
                       [str(r.get("name", "")) for r in group], out_dir / f"architectures_{dataset}.png",
                       xlabel="FLOPs per sample (log scale)", ylabel="test accuracy", title=f"{dataset}: accuracy vs cost")
        lines += ["", f"![{dataset}: accuracy vs FLOPs]({plot.name})", ""]
    return "\n".join(lines)
