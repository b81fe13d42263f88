"""What a compressed model costs: parameters (total / non-zero), sparsity, serialized size, CPU latency.

Every figure is measured on the model as it would be deployed:
- parameters are read through the layers (``module.weight`` is the masked weight while torch.nn.utils.prune
  hooks are attached; quantized layers are dequantized to count their zeros);
- the size is the byte length of ``torch.save`` of the state dict as a deployed file would hold it
  (``pack_state_dict``): float weights that are at least half zeros as CSR matrices with int32 indices
  (8 bytes per non-zero instead of 4 per entry; Deep Compression's relative-index coding goes further),
  quantized weights as int8 values with float32 per-channel scales (torch's own format spends 16 bytes of
  float64 scale + int64 zero point per channel, and a ~180-byte zip record per scalar quantizer parameter:
  11% of a static-INT8 LeNet-5's file);
- latency is the median wall time of repeated forward passes at a fixed batch size, in inference mode,
  with ``torch.set_num_threads`` pinned for the measurement.
"""

from __future__ import annotations

import io
import statistics
import time
from collections import OrderedDict
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


def _pack(v):
    """One state-dict value in its deployed form (see ``pack_state_dict``); other values pass through."""
    if isinstance(v, (tuple, list)):  # quantized Linear: _packed_params = (int8 weight, fp32 bias)
        return type(v)(_pack(x) for x in v)
    if not isinstance(v, torch.Tensor) or v.layout != torch.strided:
        return v
    if v.is_quantized:
        # torch.save would keep per-channel scales as float64 and zero points as int64 (16 bytes per output
        # channel); ONNX's QuantizeLinear stores float32 scales and zero points of the quantized type.
        out = {"qint": v.int_repr()}
        if v.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            zp = v.q_per_channel_zero_points()
            out |= {"axis": v.q_per_channel_axis(), "scale": v.q_per_channel_scales().float(),
                    "zero_point": int(zp[0]) if bool((zp == zp[0]).all()) else zp.to(v.int_repr().dtype)}
        else:
            out |= {"scale": v.q_scale(), "zero_point": v.q_zero_point()}
        return out
    if v.ndim == 0:  # a zip record costs ~180 bytes: scalars (quantizer scale / zero point) go in the pickle
        return {"scalar": v.item(), "dtype": str(v.dtype).removeprefix("torch.")}
    if (v.is_floating_point() and v.ndim >= 2
            and 1 - torch.count_nonzero(v).item() / v.numel() >= SPARSE_MIN_SPARSITY):
        csr = v.detach().reshape(v.shape[0], -1).to_sparse_csr()
        csr = torch.sparse_csr_tensor(csr.crow_indices().int(), csr.col_indices().int(), csr.values(),
                                      size=csr.shape)
        return {"csr": csr, "shape": tuple(v.shape)}
    return v


def _unpack(v):
    if isinstance(v, (tuple, list)):
        return type(v)(_unpack(x) for x in v)
    if not isinstance(v, dict):
        return v
    if "csr" in v:
        return v["csr"].to_dense().reshape(v["shape"])
    if "scalar" in v:
        return torch.tensor(v["scalar"], dtype=getattr(torch, v["dtype"]))
    q = v["qint"]  # int8 / uint8 / int32 values give qint8 / quint8 / qint32 tensors
    if "axis" in v:
        n = q.shape[v["axis"]]
        zp = v["zero_point"]
        zp = torch.full((n,), zp, dtype=torch.int64) if isinstance(zp, int) else zp.long()
        return torch._make_per_channel_quantized_tensor(q, v["scale"].double(), zp, v["axis"])
    return torch._make_per_tensor_quantized_tensor(q, v["scale"], v["zero_point"])


def pack_state_dict(state: dict) -> dict:
    """The state dict as a deployed weights file would hold it:
    - float weights of rank >= 2 that are at least half zeros as CSR matrices (int32 indices) of their
      (out, rest) view, ``{"csr": tensor, "shape": shape}``;
    - quantized tensors as their int8/uint8 values, float32 scales and zero points of the quantized type
      (one number when per-channel zero points are all equal, e.g. symmetric qint8);
    - 0-dim tensors as numbers.
    ``unpack_state_dict`` undoes it exactly."""
    return _with_metadata(state, {k: _pack(v) for k, v in state.items()})


def unpack_state_dict(state: dict) -> dict:
    return _with_metadata(state, {k: _unpack(v) for k, v in state.items()})


def _with_metadata(state: dict, values: dict) -> OrderedDict:
    # the per-module format versions that load_state_dict needs (quantized Linear reads its keys by version)
    out = OrderedDict(values)
    if hasattr(state, "_metadata"):
        out._metadata = state._metadata
    return out


def serialize(model: nn.Module) -> bytes:
    """The bytes of the compressed model's weights file (``torch.save`` of its packed state dict)."""
    buf = io.BytesIO()
    torch.save(pack_state_dict(model.state_dict()), buf)
    return buf.getvalue()


def latency_us(model: nn.Module, input_shape: tuple[int, ...], batch: int, repeats: int = 30, warmup: int = 5,
               threads: int = 1) -> float:
    """Median forward time in microseconds at ``batch`` with ``threads`` intra-op threads.

    On the CPU on purpose, whatever the trainer's accelerator: PyTorch's INT8 kernels (fbgemm / qnnpack)
    run only there, so every model of a comparison -- float, pruned, quantized -- is timed on the CPU."""
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
