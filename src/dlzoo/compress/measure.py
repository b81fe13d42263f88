"""What a compressed model costs: parameters (total / non-zero), sparsity, serialized size, CPU latency.

Every figure is measured on the model as it would be deployed:
- parameters are read through the layers (``module.weight`` is the masked weight while torch.nn.utils.prune
  hooks are attached; quantized layers are dequantized to count their zeros);
- the size is the byte length of ``torch.save(state_dict)``, where float weights that are at least half
  zeros are stored as CSR matrices with int32 indices (8 bytes per non-zero instead of 4 per entry: what a
  pruned model's file would hold; Deep Compression's relative-index coding goes further);
- latency is the median wall time of repeated forward passes at a fixed batch size, in inference mode,
  with ``torch.set_num_threads`` pinned for the measurement.
"""

from __future__ import annotations

import io
import statistics
import time
from typing import Iterator

import torch
from torch import nn

# A float weight with at least this fraction of zeros is serialized in CSR form.
SPARSE_MIN_SPARSITY = 0.5


def _is_quantized_module(mod: nn.Module) -> bool:
    return type(mod).__module__.startswith(("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized"))


def _as_float(t: torch.Tensor) -> torch.Tensor:
    return t.dequantize() if t.is_quantized else t


def weight_tensors(model: nn.Module) -> Iterator[tuple[str, str, torch.Tensor]]:
    """(module name, tensor name, effective tensor) for every learnable tensor, pruned or quantized."""
    for mod_name, mod in model.named_modules():
        seen = set()
        for pname, _ in mod.named_parameters(recurse=False):
            base = pname.removesuffix("_orig")  # torch.nn.utils.prune keeps weight_orig + mask -> weight
            seen.add(base)
            yield mod_name, base, getattr(mod, base).detach()
        if not _is_quantized_module(mod):
            continue
        # quantized layers hold packed int8 weights behind methods, not parameters
        for attr in ("weight", "bias"):
            t = getattr(mod, attr, None)
            t = t() if callable(t) and not isinstance(t, torch.Tensor) else t
            if attr not in seen and isinstance(t, torch.Tensor):
                yield mod_name, attr, _as_float(t).detach()
        packed = mod._weight_bias() if hasattr(mod, "_weight_bias") else None
        if isinstance(packed, dict):  # dynamic quantized LSTM/GRU: {"weight": {...}, "bias": {...}}
            for tensors in packed.values():
                for k, t in tensors.items():
                    if isinstance(t, torch.Tensor):
                        yield mod_name, k, _as_float(t).detach()


def param_counts(model: nn.Module) -> tuple[int, int]:
    """(total, non-zero) learnable parameters."""
    total = nonzero = 0
    for _, _, t in weight_tensors(model):
        total += t.numel()
        nonzero += int(torch.count_nonzero(t))
    return total, nonzero


def sparsity_table(model: nn.Module) -> list[dict]:
    """Per-layer weight sparsity (Distiller's ``weights_sparsity_summary``): one row per weight tensor of
    rank >= 2, plus a "total" row over them."""
    rows = []
    for mod_name, tname, t in weight_tensors(model):
        if t.ndim < 2 or not tname.endswith("weight"):
            continue
        nnz = int(torch.count_nonzero(t))
        rows.append({"layer": f"{mod_name}.{tname}", "shape": "x".join(map(str, t.shape)), "params": t.numel(),
                     "nonzero": nnz, "sparsity": 1 - nnz / t.numel()})
    n, nnz = sum(r["params"] for r in rows), sum(r["nonzero"] for r in rows)
    rows.append({"layer": "total", "shape": "", "params": n, "nonzero": nnz, "sparsity": 1 - nnz / max(n, 1)})
    return rows


def sparse_state_dict(state: dict) -> dict:
    """The state dict with mostly-zero float weights stored as CSR matrices (int32 indices) of their
    (out, rest) view, as ``{"csr": tensor, "shape": shape}``; ``dense_state_dict`` undoes it."""
    out = {}
    for k, t in state.items():
        if (isinstance(t, torch.Tensor) and t.layout == torch.strided and t.is_floating_point() and t.ndim >= 2
                and 1 - torch.count_nonzero(t).item() / t.numel() >= SPARSE_MIN_SPARSITY):
            csr = t.detach().reshape(t.shape[0], -1).to_sparse_csr()
            csr = torch.sparse_csr_tensor(csr.crow_indices().int(), csr.col_indices().int(), csr.values(),
                                          size=csr.shape)
            out[k] = {"csr": csr, "shape": tuple(t.shape)}
        else:
            out[k] = t
    return out


def dense_state_dict(state: dict) -> dict:
    return {k: (v["csr"].to_dense().reshape(v["shape"]) if isinstance(v, dict) and "csr" in v else v)
            for k, v in state.items()}


def serialize(model: nn.Module) -> bytes:
    """The bytes of the compressed model's weights file (``torch.save`` of its sparse-aware state dict)."""
    buf = io.BytesIO()
    torch.save(sparse_state_dict(model.state_dict()), buf)
    return buf.getvalue()


def latency_us(model: nn.Module, input_shape: tuple[int, ...], batch: int, repeats: int = 30, warmup: int = 5,
               threads: int = 1) -> float:
    """Median forward time in microseconds at ``batch`` with ``threads`` intra-op threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.randn(batch, *input_shape)  # (B, *input_shape)
        model.eval()
        times = []
        with torch.inference_mode():
            for i in range(warmup + repeats):
                t0 = time.perf_counter()
                model(x)
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e6
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def accuracy(model: nn.Module, loader, num_classes: int) -> float:
    """Test accuracy as the pipeline's test evaluation computes it (torchmetrics' MulticlassAccuracy,
    macro-averaged by default), so the Δ against the source run compares like with like."""
    from torchmetrics.classification import MulticlassAccuracy

    metric = MulticlassAccuracy(num_classes)
    model.eval()
    for x, y in loader:
        out = model(x)
        metric.update(out[0] if isinstance(out, (tuple, list)) else out, y)
    return float(metric.compute())


def measure(model: nn.Module, input_shape: tuple[int, ...], loader, num_classes: int, *, batches=(1, 256),
            repeats: int = 30, warmup: int = 5, threads: int = 1) -> dict:
    """Every figure of one model, flat keys ready for MLflow."""
    total, nonzero = param_counts(model)
    out = {"acc": accuracy(model, loader, num_classes), "params/total": total, "params/nonzero": nonzero,
           "sparsity": 1 - nonzero / max(total, 1), "size/bytes": len(serialize(model))}
    for b in batches:
        out[f"latency/b{b}_us"] = latency_us(model, input_shape, b, repeats, warmup, threads)
    return out
