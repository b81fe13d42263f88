"""Report sections of the controlled comparisons (``metrics/compare_*.json``, made by ``dlzoo.compare``):
the optimizer comparison (validation-loss curves and final figures), the regularization comparison and the
extra suite's recurrent-dropout one (train-val gap)."""

from __future__ import annotations

from pathlib import Path


def _comparison(rows: list[dict], name: str) -> dict | None:
    return next((r for r in rows if r.get("comparison") == name), None)


def _curves_plot(variants: dict, key: str, path: Path, title: str) -> Path:
    from dlzoo.report.plots import _plt, save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, v in variants.items():
        ys = v["curves"].get(key) or []
        ax.plot(range(1, len(ys) + 1), ys, marker=".", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return save(fig, path)


def _table(variants: dict, columns: tuple[str, ...]) -> str:
    lines = ["| variant | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name, v in variants.items():
        cells = [f"{v[c]:.4f}" if isinstance(v.get(c), float) else str(v.get(c, "")) for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def optimizers(rows: list[dict], out_dir: Path, metrics_dir: Path | None = None) -> str | None:
    comp = _comparison(rows, "optimizers")
    if comp is None:
        return None
    v = comp["variants"]
    _curves_plot(v, "val/loss", out_dir / "optimizers.png", "validation loss per optimizer")
    best = max(v, key=lambda k: v[k].get("val/acc", 0.0))
    return (f"## {comp['title']}\n\nSame network, data, seed and number of epochs; only the optimizer changes "
            f"(MLflow parent run `{comp['parent_run_id']}`, one child run each). Figures of the final weights; "
            f"best validation accuracy: **{best}**.\n\n"
            + _table(v, ("val/acc", "val/loss", "train/loss", "seconds")) + "\n\n![optimizers](optimizers.png)\n")


def _gap_section(rows: list[dict], out_dir: Path, name: str, measured: str) -> str | None:
    """A comparison judged by its train-val gap: the variants' final figures and validation-loss curves."""
    comp = _comparison(rows, name)
    if comp is None:
        return None
    v = comp["variants"]
    _curves_plot(v, "val/loss", out_dir / f"{name}.png", f"validation loss per variant ({name})")
    smallest = min(v, key=lambda k: v[k]["gap/loss"])
    best = max(v, key=lambda k: v[k].get("val/acc", 0.0))
    return (f"## {comp['title']}\n\nTrain-val gap = train minus val accuracy, and val minus train loss, of the "
            f"final weights {measured} (MLflow parent run `{comp['parent_run_id']}`). Smallest loss gap: "
            f"**{smallest}**; best validation accuracy: **{best}**.\n\n"
            + _table(v, ("train/acc", "val/acc", "gap/acc", "train/loss", "val/loss", "gap/loss"))
            + f"\n\n![{name}]({name}.png)\n")


def regularization(rows: list[dict], out_dir: Path, metrics_dir: Path | None = None) -> str | None:
    return _gap_section(rows, out_dir, "regularization", "measured without dropout")


def rnn_dropout(rows: list[dict], out_dir: Path, metrics_dir: Path | None = None) -> str | None:
    """No, standard and locked dropout in a 2-layer LSTM (the extra suite's ``rnn_dropout`` comparison)."""
    return _gap_section(rows, out_dir, "rnn_dropout",
                        "measured without dropout; *dropout* draws a new mask at every time step, *variational* "
                        "one mask per sequence for all its steps, at the same rate and places")
