"""Where dlzoo computes: the configured trainer (``trainer.accelerator`` / ``devices`` / ``precision``),
checked against the machine before any data is built, and the Trainers that training, test evaluation,
compression fine-tunes and the other single-process parts build from it.

Lightning resolves the accelerator itself; the check here exists because Lightning's own message for a
missing GPU comes only after the data is loaded and the MLflow run is opened, and does not say what to use instead.
"""

from __future__ import annotations

from typing import Any

from dlzoo.errors import ConfigError

GPU = ("gpu", "cuda")
# what a preset is called, for the one-line message
_LABEL = {"gpu": "CUDA GPU", "cuda": "CUDA GPU", "mps": "Apple MPS device"}


def available(accelerator: str) -> int | None:
    """How many devices of ``accelerator`` this machine has; None where any number is fine (cpu: processes)
    or Lightning decides (auto, tpu, ...)."""
    import torch

    accelerator = str(accelerator).lower()
    if accelerator in GPU:
        return torch.cuda.device_count()
    if accelerator == "mps":
        return int(torch.backends.mps.is_available())
    return None


def requested(devices: Any, have: int) -> int:
    """The number of devices a ``trainer.devices`` value asks for (``auto`` / -1: all ``have``)."""
    if isinstance(devices, str) and devices.strip() not in ("auto", "-1"):
        devices = [d for d in devices.split(",") if d.strip()] if "," in devices else int(devices)
    if devices in ("auto", "-1", -1):
        return max(have, 1)
    return len(devices) if isinstance(devices, (list, tuple)) or hasattr(devices, "__len__") else int(devices)


def check_trainer(trainer: Any) -> None:
    """Fail with one line (the problem and ``trainer=cpu``) when the configured accelerator is absent or
    has fewer devices than ``trainer.devices`` asks for."""
    accelerator = str(trainer.get("accelerator", "cpu")).lower()
    _check_precision(str(trainer.get("precision", "32-true")), accelerator)
    have = available(accelerator)
    if have is None:
        return
    label = _LABEL[accelerator]
    if have == 0:
        raise ConfigError(f"trainer.accelerator={accelerator}: this machine has no {label} "
                          "(torch sees none); train on the CPU with trainer=cpu")
    want = requested(trainer.get("devices", 1), have)
    if want > have:
        raise ConfigError(f"trainer.devices={trainer.get('devices')}: this machine has {have} {label}(s); "
                          f"use trainer.devices={have} (or fewer), or trainer=cpu")


def weights_dtype(precision: Any):
    """The dtype Lightning casts the weights to under a ``-true`` precision (bf16-true, 16-true, 64-true); None
    where the weights stay float32 (32-true and the mixed precisions, which cast inside autocast)."""
    import torch

    return {"16-true": torch.float16, "bf16-true": torch.bfloat16, "64-true": torch.float64,
            "64": torch.float64}.get(str(precision))


def _check_precision(precision: str, accelerator: str) -> None:
    """transformer-engine (FP8) needs NVIDIA's package and a CUDA GPU; Lightning says so only once the model
    is built and the MLflow run is open."""
    if precision != "transformer-engine":
        return
    import importlib.util

    if accelerator not in GPU + ("auto",) or importlib.util.find_spec("transformer_engine") is None:
        raise ConfigError("trainer.precision=transformer-engine needs a CUDA GPU (trainer=gpu) and NVIDIA's "
                          "transformer_engine package; every family trains with bf16-mixed or 16-mixed instead")


def device(trainer: Any):
    """The torch device one process of the configured trainer computes on (the first of its devices)."""
    import torch

    accelerator = str(trainer.get("accelerator", "cpu")).lower()
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    return torch.device("cuda" if accelerator in GPU else accelerator if accelerator == "mps" else "cpu")


def pin_memory(trainer: Any) -> bool:
    """DataLoaders pin host memory when batches go to a CUDA GPU (faster, asynchronous copies)."""
    return device(trainer).type == "cuda"


def single_device_trainer(trainer: Any, **kwargs):
    """A Lightning Trainer on one device of the configured accelerator, at the configured precision:
    test evaluation and compression fine-tunes run in one process (no DDP launch), quietly, without a
    logger or checkpoints unless ``kwargs`` say otherwise."""
    import lightning.pytorch as pl

    check_trainer(trainer)
    args = {"accelerator": str(trainer.get("accelerator", "cpu")), "devices": 1,
            "precision": str(trainer.get("precision", "32-true")), "logger": False, "enable_progress_bar": False,
            "enable_model_summary": False, "enable_checkpointing": False}
    return pl.Trainer(**(args | kwargs))
