"""Inference latency of every registered model (batch 1 and 256, CPU, threads pinned), of its dynamic-INT8
version, and the peak memory of training each one.

Latency: ``dlzoo.compress.measure.latency_us`` (median of repeated forwards after warm-up, ``torch`` threads
pinned to ``--threads``) on the input each model is trained on in the pipeline (images 1x32x32, MLP and
logistic regression on 8x8 digits, sequence models on MNIST-1D's 40 steps). The INT8 column is
``torch.ao.quantization.quantize_dynamic`` of the Linear/LSTM/GRU layers (what `compress` calls
`quantize_dynamic`); the pipeline's `compress` stages record the latency of their static/QAT/pruned models
in ``metrics/compress/``. Peak memory: maximum resident set size of a fresh process that builds the model
and trains ``--steps`` Adam steps at batch 64, minus its resident size once the model was built (the peak is
reset there through ``/proc/self/clear_refs``, Linux; otherwise import's transient peak hides small models'
training): the training's own memory -- activations, gradients, optimizer state. Classifiers train on
cross-entropy, models with a dense output (the YOLO-style grid) on the mean square of their output as a
stand-in loss. A model whose dynamic-INT8 version fails to run gets null INT8 latencies and the error.

    python benchmarks/models.py
    python benchmarks/models.py --models lenet5,resnet18 --repeats 10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import header  # noqa: E402

SHAPES = {"mlp": (1, 8, 8), "logreg": (1, 8, 8), "cnn1d": (1, 40), "rnn": (1, 40), "lstm": (1, 40), "gru": (1, 40),
          "bilstm": (1, 40), "transformer": (1, 40)}
DEFAULT_SHAPE = (1, 32, 32)

TRAIN_SNIPPET = """
import sys, torch
from dlzoo.models import get_model
def status(key):  # KiB, from the kernel's accounting of this process
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1])
name, shape, steps = sys.argv[1], tuple(int(s) for s in sys.argv[2].split("x")), int(sys.argv[3])
torch.manual_seed(0)
net = get_model(name, input_shape=shape, num_classes=10)
# reset the peak (VmHWM) to the current resident size: the import's transient peak must not hide training's
open("/proc/self/clear_refs", "w").write("5")
built = status("VmRSS")
if steps:
    opt = torch.optim.Adam(net.parameters())
    x, y = torch.randn(64, *shape), torch.randint(0, 10, (64,))
    for _ in range(steps):
        out = net(x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        # classifiers: cross-entropy; dense outputs (a detector's grid): a stand-in loss over every output, for
        # the same activations, gradients and optimizer state
        loss = torch.nn.functional.cross_entropy(out, y) if out.ndim == 2 else out.float().pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
print(built, status("VmHWM"))
"""


def train_peak_mib(name: str, shape: tuple[int, ...], steps: int) -> float:
    """Peak resident memory of ``steps`` training steps above that of the built model, in a fresh process."""
    r = subprocess.run([sys.executable, "-c", TRAIN_SNIPPET, name, "x".join(map(str, shape)), str(steps)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-1000:])
    built, peak = (int(v) for v in r.stdout.split()[-2:])
    return round((peak - built) / 1024, 1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=None, help="comma-separated registered models (default: all that take "
                    "one image or signal tensor)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=30, help="timed forwards at batch 1 (after 5 warm-up ones)")
    ap.add_argument("--repeats-b256", type=int, default=5,
                    help="timed forwards at batch 256 (after 1 warm-up): up to 3.5 s each for DenseNet on 1 thread")
    ap.add_argument("--steps", type=int, default=20, help="training steps for the peak-memory figure (0: skip)")
    ap.add_argument("--memory-only", action="store_true", help="only the training peak memory (merged into --out)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "models.json")
    args = ap.parse_args(argv)
    import torch

    from dlzoo.compress.measure import latency_us
    from dlzoo.compress.quantize import quantize_dynamic
    from dlzoo.models import get_model, list_models

    names = args.models.split(",") if args.models else list_models()
    unknown = set(names) - set(list_models())
    if unknown:
        sys.exit(f"error: unknown model(s) {sorted(unknown)}; registered: {', '.join(list_models())}")
    if args.memory_only:  # re-measure the memory column of a recorded run
        record = json.loads(args.out.read_text())
        for name, row in record["results"].items():
            if name in names:
                row["train_peak_mib"] = train_peak_mib(name, tuple(row["input_shape"]), args.steps)
                print(f"{name:16} train {row['train_peak_mib']:>8.1f} MiB", flush=True)
        record["train_steps"] = args.steps
        args.out.write_text(json.dumps(record, indent=2) + "\n")
        return print(f"-> {args.out}")
    results, skipped = {}, {}
    print(f"{'model':16} {'params':>10} {'b1 µs':>9} {'b256 µs':>10} {'int8 b1':>9} {'int8 b256':>10} {'train MiB':>10}")
    for name in names:
        shape = SHAPES.get(name, DEFAULT_SHAPE)
        torch.manual_seed(0)
        try:
            net = get_model(name, input_shape=shape, num_classes=10).eval()
            net(torch.randn(2, *shape))
        except Exception as exc:  # noqa: BLE001 -- models with other inputs (seq2seq, detection, generative)
            skipped[name] = f"{type(exc).__name__}: {str(exc)[:120]}"
            continue
        row = {"input_shape": list(shape), "params": sum(p.numel() for p in net.parameters())}
        q = quantize_dynamic(net)
        try:
            q(torch.randn(2, *shape))
        except Exception as exc:  # noqa: BLE001 -- e.g. nn.TransformerEncoderLayer's fast path reads linear.weight
            row["int8_dynamic_error"] = f"{type(exc).__name__}: {str(exc)[:160]}"
            q = None
        for prefix, model in (("", net), ("int8_dynamic_", q)):
            if model is None:
                row[f"{prefix}latency_b1_us"] = row[f"{prefix}latency_b256_us"] = None  # JSON null, not NaN
                continue
            row[f"{prefix}latency_b1_us"] = latency_us(model, shape, 1, repeats=args.repeats, threads=args.threads)
            row[f"{prefix}latency_b256_us"] = latency_us(model, shape, 256, repeats=args.repeats_b256, warmup=1,
                                                         threads=args.threads)
        if args.steps:
            row["train_peak_mib"] = train_peak_mib(name, shape, args.steps)
        results[name] = row
        cells = [row[f"{p}latency_b{b}_us"] for p in ("", "int8_dynamic_") for b in (1, 256)]
        print(f"{name:16} {row['params']:>10,} " + " ".join(f"{'-' if c is None else f'{c:,.0f}':>9}" for c in cells)
              + f" {row.get('train_peak_mib', float('nan')):>10.1f}", flush=True)
    record = {**header("models", __file__, argv), "threads": args.threads,
              "repeats": args.repeats, "repeats_b256": args.repeats_b256, "train_steps": args.steps,
              "results": results, "skipped": skipped}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    if skipped:
        print(f"skipped (other input kinds): {', '.join(skipped)}")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
