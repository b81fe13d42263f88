"""Cost of full against truncated (local) self-attention as the sequence grows.

For each length T and each arm -- ``full`` (every query against all T keys) and ``local`` (each query against
its 2w+1 neighbours, ``dlzoo.models.attention.MultiHeadAttention(window=w)``) -- one forward and backward pass
of a multi-head self-attention layer on a (batch, T, d_model) input is timed (median over ``--repeats`` after
one warm-up) and its memory measured as the bytes of the tensors autograd saves for the backward pass (the
activation memory of training, the same on every device; on CUDA also the peak allocated memory). Full
attention grows as T**2 in both, local attention linearly. Results are printed and written to ``--out`` (JSON).

    python benchmarks/attention_cost.py                           # T = 64 .. 4096, window 8, CPU, 1 thread
    python benchmarks/attention_cost.py --device cuda --lengths 256,1024,4096,16384
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import header  # noqa: E402


def measure(layer, x, repeats: int) -> dict:
    import torch

    from dlzoo.claims.measures import saved_tensor_bytes

    cuda = x.device.type == "cuda"

    def step():
        out = layer(x, x, x)[0]
        out.sum().backward()
        if cuda:
            torch.cuda.synchronize()

    step()  # warm-up
    times = []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    row = {"ms": 1000 * statistics.median(times), "saved_mb": saved_tensor_bytes(lambda: layer(x, x, x)) / 2 ** 20}
    if cuda:
        row["peak_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return row


def run(lengths: list[int], window: int, d_model: int, heads: int, batch: int, repeats: int, device: str) -> list[dict]:
    import torch

    from dlzoo.models.attention import MultiHeadAttention

    rows = []
    for t in lengths:
        x = torch.randn(batch, t, d_model, device=device, requires_grad=True)
        for arm, w in (("full", None), ("local", window)):
            torch.manual_seed(0)
            layer = MultiHeadAttention(d_model, heads, window=w).to(device)
            rows.append({"length": t, "arm": arm, **measure(layer, x, repeats)})
            print(f"T={t:6d} {arm:5s} {rows[-1]['ms']:9.2f} ms  saved {rows[-1]['saved_mb']:9.2f} MB", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="64,256,1024,4096", help="comma-separated sequence lengths")
    ap.add_argument("--window", type=int, default=8, help="local attention: w tokens either side")
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "attention_cost.json")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    lengths = [int(n) for n in args.lengths.split(",")]
    if args.window < 1 or min(lengths) < 1:
        sys.exit("error: --window and every --lengths value must be >= 1")
    rows = run(lengths, args.window, args.d_model, args.heads, args.batch, args.repeats, args.device)
    setting = {k: getattr(args, k) for k in ("window", "d_model", "heads", "batch", "repeats", "device", "threads")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**header("attention_cost", __file__, argv), "setting": setting, "rows": rows},
                                   indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
