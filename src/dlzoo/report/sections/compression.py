"""Report section: every compression result (``metrics/compress/*.json``, written by the `compress`
stages) in a table, and accuracy against serialized size and against batch-256 latency with the Pareto
front (the models no other model beats on both axes) per dataset."""

from __future__ import annotations

import json
from pathlib import Path

from dlzoo.paths import suite_metrics_dirs

COLUMNS = (("name", "compressed model"), ("test/acc", "acc"), ("test/acc_delta", "Δ acc"), ("params/total", "params"),
           ("params/nonzero", "non-zero"), ("sparsity", "sparsity"), ("size/bytes", "bytes"),
           ("compression_ratio", "× smaller"), ("latency/b1_us", "b1 µs"), ("latency/b256_us", "b256 µs"),
           ("speedup/b256", "× faster b256"), ("run_id", "MLflow run"))


def load_compress_rows(folder: Path | None = None, metrics_dir: Path | None = None) -> list[dict]:
    """The compression results of ``folder``; without one, the default pipeline's (``<metrics_dir>/compress``)
    and the extra suite's beside it (``<metrics_dir>-extra/compress``, their source rows left out: the default
    pipeline has them)."""
    if folder is not None:
        return [row for f in sorted(folder.glob("*.json")) for row in json.loads(f.read_text()).values()]
    default, extra_dir = suite_metrics_dirs(metrics_dir)
    extra = [r for r in load_compress_rows(extra_dir / "compress") if r["method"] != "none"]
    return load_compress_rows(default / "compress") + extra


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (cost, accuracy) that no other point beats: lower-or-equal cost and
    higher-or-equal accuracy, strictly better in one. Sorted by cost."""
    front = [i for i, (c, a) in enumerate(points)
             if not any(c2 <= c and a2 >= a and (c2, a2) != (c, a) for c2, a2 in points)]
    return sorted(front, key=lambda i: points[i][0])


def _fmt(key: str, v) -> str:
    if v is None:
        return ""
    if key in ("test/acc", "sparsity"):
        return f"{v:.4f}"
    if key == "test/acc_delta":
        return f"{v:+.4f}"
    if key in ("compression_ratio", "speedup/b256"):
        return f"{v:.2f}"
    if isinstance(v, float):
        return f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _plot(rows: list[dict], cost: str, xlabel: str, path: Path) -> Path:
    from dlzoo.report.plots import _plt

    plt = _plt()
    datasets = sorted({r["dataset"] for r in rows})
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.2 * len(datasets), 4.6), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        rs = [r for r in rows if r["dataset"] == ds and r.get(cost)]
        for source in sorted({r["source"] for r in rs}):
            pts = [r for r in rs if r["source"] == source]
            sc = ax.scatter([r[cost] for r in pts], [r["test/acc"] for r in pts], label=source, alpha=0.8)
            for r in pts:
                ax.annotate(r["recipe"] if r["role"] is None else f"{r['recipe']}-{r['role']}",
                            (r[cost], r["test/acc"]), fontsize=6, xytext=(3, 3), textcoords="offset points",
                            color=sc.get_facecolor()[0])
        front = pareto_front([(r[cost], r["test/acc"]) for r in rs])
        ax.plot([rs[i][cost] for i in front], [rs[i]["test/acc"] for i in front], "k--", lw=1, label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy")
        ax.set_title(ds)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def int8_speed(crows: list[dict]) -> list[str]:
    """A plain statement of what INT8 does to CPU latency here, with the figures of every quantized model."""
    q = [r for r in crows if r["method"] == "quantize" and r.get("speedup/b256")]
    if not q:
        return []
    figs = "; ".join(f"{r['name']} {r.get('speedup/b1', float('nan')):.2f}x at batch 1, {r['speedup/b256']:.2f}x at "
                     f"batch 256" for r in q)
    paying = [r["name"] for r in q if r["speedup/b256"] >= 1.5]
    verdict = (f"INT8 pays (>= 1.5x at batch 256) on {', '.join(paying)}." if paying else
               "**INT8 is not faster than FP32 on these models** (no pipeline model reaches 1.5x at batch "
               "256).")
    if len(paying) == len(q):
        return ["", f"INT8 speed: {figs}. {verdict}"]
    cpu = sorted({r["cpu"] for r in q if r.get("cpu")})
    isa = (f" The CPU's kernels are {', '.join(cpu)}: without AVX-512 VNNI there is no int8 dot-product "
           "instruction, so even large int8 GEMMs gain well under 4x." if cpu and "VNNI" not in " ".join(cpu) else "")
    return ["", f"INT8 speed: {figs}. {verdict} Why: the models are tiny (LeNet-300-100 is 784-300-100-10, "
            "0.27 M multiply-adds per sample; LeNet-5's convolutions have 6 and 16 channels), so the work INT8 "
            "adds per layer (dynamic: measuring and quantizing each batch's activations, then dequantizing; "
            "static: quantizing / dequantizing at the ends and fbgemm's re-layout of small convolutions) costs as "
            f"much as the int8 GEMMs save.{isa} The size gain holds regardless (3.6-4x)."]


def gap_closed(teacher: float, scratch: float, distilled: float) -> float | None:
    """The fraction of the teacher-student accuracy gap that distillation closes: (distilled - scratch) /
    (teacher - scratch); 1 = the student matches the teacher, 0 = no better than training it from scratch.
    None where there is no gap (the scratch student matches or beats the teacher)."""
    return (distilled - scratch) / (teacher - scratch) if teacher > scratch else None


def distill_gaps(crows: list[dict]) -> list[str]:
    """One sentence per distilled source: teacher, both students and the fraction of the gap closed."""
    lines = []
    for source in sorted({r["source"] for r in crows if r["role"] == "distilled"}):
        by = {r["role"]: r for r in crows if r["source"] == source and r["role"]}
        if "scratch" not in by:
            continue
        t, s, d = by["distilled"]["source/test/acc"], by["scratch"]["test/acc"], by["distilled"]["test/acc"]
        closed = gap_closed(t, s, d)
        verdict = ("no gap to close: the scratch student matches the teacher" if closed is None
                   else f"**{closed:.0%} of the gap closed**")
        lines += ["", f"Distillation from {source}: teacher {t:.4f}, student from scratch {s:.4f}, distilled "
                      f"{d:.4f} (same data, epochs and settings; see the recipe): {verdict}."]
    return lines


def gating(crows: list[dict]) -> list[str]:
    """Dynamic pruning (channel gating) next to static structured pruning of the same source."""
    lines = []
    for r in (r for r in crows if r["method"] == "gate"):
        static = [s for s in crows if s["source"] == r["source"] and s["recipe"] == "prune_structured"]
        beside = (f"; static structured pruning of the same source: acc {static[0]['test/acc']:.4f} with "
                  f"{static[0]['params/total']:,} parameters for every input" if static else "")
        lines += ["", f"Dynamic pruning by channel gating on {r['source']}: acc {r['test/acc']:.4f} "
                      f"({r['test/acc_delta']:+.4f}), **{r['gate/channels_skipped']:.0%} of the channels and "
                      f"{r['gate/flops_skipped']:.0%} of the FLOPs skipped per input** (counted on the computation "
                      f"actually run){beside}."]
    return lines


def section(rows: list[dict], out_dir: Path, metrics_dir: Path | None = None) -> str | None:
    crows = load_compress_rows(metrics_dir=metrics_dir)
    if not crows:
        return None
    _plot(crows, "size/bytes", "serialized size (bytes, log)", out_dir / "compress_size.png")
    _plot(crows, "latency/b256_us", "CPU latency at batch 256 (µs, log)", out_dir / "compress_latency.png")
    lines = ["## Compression", "",
             "Each compressed model is an MLflow run nested under its source run (tag `mlflow.parentRunId`); "
             "Δ acc is against the source measured the same way. Size: bytes of the saved weights (CSR for "
             "mostly-zero weights); latency: median CPU forward time, threads pinned (noisy on a shared machine).",
             "", "| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in crows:
        lines.append("| " + " | ".join(_fmt(k, r.get(k)) for k, _ in COLUMNS) + " |")
    lines += int8_speed(crows)
    lines += distill_gaps(crows)
    lines += gating(crows)
    lines += ["", "![accuracy vs size](compress_size.png)", "", "![accuracy vs latency](compress_latency.png)", ""]
    return "\n".join(lines)
