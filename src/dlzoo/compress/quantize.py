"""FP32 -> INT8 quantization with ``torch.ao.quantization`` (eager CPU kernels: fbgemm / x86).

- ``dynamic``: weights of Linear / LSTM / GRU stored as int8, activations quantized on the fly per batch
  (``quantize_dynamic``); no data needed.
- ``static``: weights and activations int8 with activation ranges calibrated on training batches. FX graph
  mode (``prepare_fx`` / ``convert_fx``) traces the network, fuses conv-bn-relu / linear-relu and places the
  quant/dequant stubs itself, so the models need no QuantStub edits.
- ``qat``: quantization-aware training: fake-quant modules (and folded conv-bn) in the traced graph are
  fine-tuned, then converted like ``static``.

Why this API (measured here, see README "Compression"): torch.ao's int8 kernels are the ones that give a
real CPU speed-up in eager mode on large Linear layers; torchao's int8 configs were slower than fp32 in
eager mode and PT2E needs torch.compile. torch.ao.quantization is deprecated but still ships in torch 2.13.
"""

from __future__ import annotations

import copy
import warnings
from typing import Callable

import torch
from torch import nn

from dlzoo.errors import ConfigError

MODES = ("dynamic", "static", "qat")
DYNAMIC_LAYERS = {"Linear": nn.Linear, "LSTM": nn.LSTM, "GRU": nn.GRU}


def _engine(backend: str) -> None:
    # Quantized CPU kernels (e.g. quantized_resize_cpu_) have no deterministic variant: after a Lightning
    # Trainer(deterministic=True) in the same process they would raise. Keep determinism, warn instead.
    if torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(True, warn_only=True)
    if backend not in torch.backends.quantized.supported_engines:
        raise ConfigError(f"compress.backend={backend!r}: this torch supports "
                          f"{torch.backends.quantized.supported_engines}")
    torch.backends.quantized.engine = backend


def quantize_dynamic(model: nn.Module, layers=("Linear", "LSTM", "GRU"), backend: str = "x86") -> nn.Module:
    unknown = sorted(set(layers) - set(DYNAMIC_LAYERS))
    if unknown:
        raise ConfigError(f"compress.layers: {unknown} cannot be quantized dynamically; choose from {sorted(DYNAMIC_LAYERS)}")
    _engine(backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).eval(),
                                                      {DYNAMIC_LAYERS[n] for n in layers}, dtype=torch.qint8)


def quantize_static(model: nn.Module, calibration, example: torch.Tensor, backend: str = "x86") -> nn.Module:
    """Post-training static quantization; ``calibration`` is an iterable of input batches."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    _engine(backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(copy.deepcopy(model).eval(), get_default_qconfig_mapping(backend), (example,))
        with torch.no_grad():
            for x in calibration:  # observers record activation ranges
                prepared(x)
        return convert_fx(prepared)


def quantize_qat(model: nn.Module, example: torch.Tensor, train: Callable[[nn.Module], nn.Module],
                 backend: str = "x86") -> nn.Module:
    """Quantization-aware training: ``train`` fine-tunes the fake-quantized graph, which is then converted."""
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_qat_fx

    _engine(backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_qat_fx(copy.deepcopy(model).train(), get_default_qat_qconfig_mapping(backend), (example,))
        prepared = train(prepared)
        _engine(backend)  # the fine-tuning Trainer(deterministic=True) turned warn_only off again
        return convert_fx(prepared.eval())
