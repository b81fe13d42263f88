"""Report section of the sequence models: the MNIST-1D table (regular vs shuffled, beside the paper's
numbers), the MNIST-1D Transformers' attention variants (full, local, additive), the seq2seq length-generalisation plot
(exact-sequence accuracy vs source length), and the decoders (autoregressive vs non-autoregressive, copying)."""

from __future__ import annotations

from pathlib import Path

# Greydanus (2020), MNIST-1D README table: test accuracy on the regular and the shuffled dataset.
PAPER = {"logreg": (0.32, 0.32), "mlp": (0.68, 0.68), "cnn1d": (0.94, 0.56), "gru": (0.91, 0.57)}
PAPER_HUMAN = (0.96, 0.30)
DATASETS = ("mnist1d", "mnist1d_shuffled")


def _pct(v) -> str:
    return "" if v is None else f"{100 * float(v):.1f}%"


def mnist1d_table(rows: list[dict]) -> str | None:
    acc: dict[tuple[str, str], float] = {}
    for r in rows:
        if r.get("dataset") in DATASETS and "test/acc" in r:
            key = (r["model"], r["dataset"])
            acc[key] = max(acc.get(key, 0.0), float(r["test/acc"]))
    if not acc:
        return None
    present = {m for m, _ in acc}
    models = [m for m in PAPER if m in present] + sorted(present - set(PAPER))
    lines = ["## MNIST-1D: regular vs shuffled positions\n",
             "Test accuracy (1000 official test signals) of the pipeline's models beside the MNIST-1D paper's "
             "table. Shuffled = one fixed permutation of the 40 positions (`data=mnist1d_shuffled`).\n",
             "| model | regular | paper | shuffled | paper (shuffled) |", "|---|---|---|---|---|"]
    for m in models:
        paper = PAPER.get(m, (None, None))
        lines.append(f"| {m} | {_pct(acc.get((m, 'mnist1d')))} | {_pct(paper[0])} | "
                     f"{_pct(acc.get((m, 'mnist1d_shuffled')))} | {_pct(paper[1])} |")
    lines.append(f"| human expert | | {_pct(PAPER_HUMAN[0])} | | {_pct(PAPER_HUMAN[1])} |")
    return "\n".join(lines) + "\n"


PREFIX = "long/acc_len_"


def length_curve(row: dict) -> tuple[list[tuple[int, float]], tuple[int | None, int | None]]:
    """((source length, greedy exact accuracy) points, training length range) of a seq2seq row: the
    ``long/*`` metrics of the test evaluation (dlzoo.tasks.seq2seq ``length_curve``)."""
    pts = sorted((int(k[len(PREFIX):]), float(v)) for k, v in row.items() if k.startswith(PREFIX))
    lo, hi = row.get("long/train_len_min"), row.get("long/train_len_max")
    return pts, (None if lo is None else int(lo), None if hi is None else int(hi))


def length_plot(rows: list[dict], out_dir: Path) -> str | None:
    curves = [(r, *length_curve(r)) for r in rows]
    curves = [c for c in curves if c[1]]
    if not curves:
        return None
    from dlzoo.report.plots import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r, pts, _ in curves:
        ax.plot([n for n, _ in pts], [v for _, v in pts], marker="o", ms=3, label=f"{r['name']} ({r['model']})")
    lo, hi = curves[0][2]
    if lo is not None:
        ax.axvspan(lo - 0.5, hi + 0.5, color="grey", alpha=0.15, label="training lengths")
    ax.set(xlabel="source length (tokens)", ylabel="exact-sequence accuracy (greedy)", ylim=(-0.02, 1.02),
           title="seq2seq: length generalisation")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / "seq2seq_lengths.png", dpi=120)
    plt.close(fig)
    table = ["| experiment | exact (greedy) | exact (beam) | token acc (greedy) | token acc (beam) |", "|---|---|---|---|---|"]
    for r, _, _ in curves:
        table.append(f"| {r['name']} | {_pct(r.get('test/acc'))} | {_pct(r.get('test/beam_acc'))} | "
                     f"{_pct(r.get('test/token_acc'))} | {_pct(r.get('test/beam_token_acc'))} |")
    lens = sorted({n for _, pts, _ in curves for n, _ in pts})
    by_len = ["| source length | " + " | ".join(r["name"] for r, _, _ in curves) + " |", "|---" * (len(curves) + 1) + "|"]
    for n in lens:
        marks = " (trained)" if lo is not None and lo <= n <= hi else ""
        by_len.append(f"| {n}{marks} | " + " | ".join(_pct(dict(pts).get(n)) for _, pts, _ in curves) + " |")
    return ("## Sequence-to-sequence: sorting tokens\n\nHeld-out test sequences of the training lengths "
            f"({lo}-{hi} tokens):\n\n" + "\n".join(table)
            + "\n\nExact-sequence accuracy (greedy) vs source length on the `long` split, up to twice the longest "
            "training length:\n\n![seq2seq lengths](seq2seq_lengths.png)\n\n" + "\n".join(by_len) + "\n")


def decoding_table(rows: list[dict]) -> str | None:
    """Autoregressive vs non-autoregressive decoding and copying vs generating: every seq2seq row that
    recorded its decoding time (dlzoo.tasks.seq2seq ``test/decode_ms``)."""
    rows = sorted((r for r in rows if "test/decode_ms" in r), key=lambda r: (r.get("dataset", ""), r["name"]))
    if not rows:
        return None
    lines = ["## Sequence-to-sequence: decoders and copying\n",
             "Test exact-sequence and token accuracy with each model's own decoder (greedy autoregressive, or one "
             "non-autoregressive pass for `nat_seq2seq`), and its decoding wall time per sequence (batches of the "
             "data config, this machine). On `names` half of the test sequences hold a name never seen in training, "
             "which only a model with the copy mechanism can output.\n",
             "| experiment | data | model | exact | token acc | decoding ms / sequence |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r.get('dataset', '')} | {r.get('model', '')} | {_pct(r.get('test/acc'))} | "
                     f"{_pct(r.get('test/token_acc'))} | {float(r['test/decode_ms']):.2f} |")
    return "\n".join(lines) + "\n"


def attention_table(rows: list[dict]) -> str | None:
    """The MNIST-1D Transformer classifiers side by side (full, truncated, additive attention)."""
    rows = sorted((r for r in rows if r.get("model") == "transformer" and r.get("dataset") in DATASETS
                   and "test/acc" in r), key=lambda r: r["name"])
    if not rows:
        return None
    lines = ["## MNIST-1D Transformer: attention variants\n",
             "`mnist1d_transformer_local` lets each patch token attend to the 2 tokens either side only (the [CLS] "
             "token to all): truncated self-attention, whose cost against the length `python "
             "benchmarks/attention_cost.py` measures; `mnist1d_transformer_additive` scores with v·tanh(q + k) "
             "instead of the scaled dot product.\n",
             "| experiment | test accuracy |", "|---|---|"]
    lines += [f"| {r['name']} | {_pct(r['test/acc'])} |" for r in rows]
    return "\n".join(lines) + "\n"


def section(rows: list[dict], out_dir: Path, metrics_dir: Path | None = None) -> str | None:
    parts = [p for p in (mnist1d_table(rows), attention_table(rows), length_plot(rows, out_dir), decoding_table(rows)) if p]
    return "\n".join(parts) or None
