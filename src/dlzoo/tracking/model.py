"""The MLflow Model of a classifier or regressor: the trained network between the datamodule's preprocessing
and the task's output units.

A logged (and registered) classifier takes raw samples as the dataset stores them — digits 8x8 with
intensities 0..16, MNIST-1D signals of 40 values, 28x28 MNIST pixels 0..255 — and returns class
probabilities. Scaling, resizing to the network's image size and standardisation with the training split's
mean and std are part of the model (``RawInputClassifier``), so ``mlflow models serve``, a batch job or
``dlzoo.predict`` need nothing but the model URI. A regressor (``RawInputRegressor``) takes raw features
(diabetes: 10 values in their own units) and returns predictions in the target's units. The signature (a
float32 tensor of the raw sample shape, any batch size) lets MLflow refuse input of another shape or type
before it reaches the network.

The model's metadata (``MLmodel``) says how raw samples look: ``dlzoo.sample_shape``, ``dlzoo.raw_max``
(the largest raw value in the training split) and ``dlzoo.raw_dtype``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

META_PREFIX = "dlzoo."


class RawInputClassifier(nn.Module):
    """Raw samples (N, *sample shape) -> class probabilities (N, C), with the datamodule's preprocessing
    (``ArrayDataModule._tensor`` and ``prepare_inputs``) in front of the network. ``net`` stays a submodule
    of that name: the state dict is the network's under ``net.``."""

    def __init__(self, net: nn.Module, scale: float, mean: float, std: float, image_size: int | None) -> None:
        super().__init__()
        self.net = net
        self.scale, self.mean, self.std, self.image_size = scale, mean, std, image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() * self.scale
        if x.ndim in (2, 3):  # (N, L) signals, (N, H, W) grey images: add the channel dim
            x = x.unsqueeze(1)
        if x.ndim == 4 and self.image_size and x.shape[-1] != self.image_size:
            x = nn.functional.interpolate(x, size=(self.image_size,) * 2, mode="bilinear", align_corners=False)
        return torch.softmax(self.net((x - self.mean) / self.std), dim=1)


class RawInputRegressor(nn.Module):
    """Raw features (N, F) -> predictions in target units (N, 1): the training split's per-feature
    standardisation (``RegressionDataModule``) before the network, its target mean/std
    (``RegressionTask.forward``) after it."""

    def __init__(self, net: nn.Module, feature_stats, target_stats: tuple[float, float]) -> None:
        super().__init__()
        self.net = net
        mean, std = feature_stats if feature_stats is not None else (torch.tensor(0.0), torch.tensor(1.0))
        self.register_buffer("x_mean", mean.clone(), persistent=False)  # not in the state dict: only net.*
        self.register_buffer("x_std", std.clone(), persistent=False)
        self.y_mean, self.y_std = target_stats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().reshape(x.shape[0], -1)  # (N, F)
        return self.net((x - self.x_mean) / self.x_std) * self.y_std + self.y_mean


def _raw_meta(dm, task_name: str, raw: np.ndarray) -> dict:
    return {f"{META_PREFIX}task": task_name, f"{META_PREFIX}dataset": dm.name,
            f"{META_PREFIX}sample_shape": list(raw.shape[1:]), f"{META_PREFIX}raw_max": float(raw.max()),
            f"{META_PREFIX}raw_dtype": str(raw.dtype)}


def _raw_train(dm) -> np.ndarray:
    from dlzoo.data.arrays import load_array
    from dlzoo.paths import SPLITS_FIX_HINT

    return load_array(dm.splits_dir / dm.name / "x_train.npy", SPLITS_FIX_HINT)


def raw_input_regressor(net: nn.Module, dm) -> tuple[RawInputRegressor, np.ndarray, dict]:
    """(wrapper, input example, MLmodel metadata) for a RegressionDataModule that has been set up."""
    raw = _raw_train(dm)
    wrapper = RawInputRegressor(net, dm.feature_stats if dm.standardize else None, dm.target_stats).eval()
    return wrapper, raw[:2].astype(np.float32), _raw_meta(dm, "regress", raw)


def raw_input_classifier(net: nn.Module, dm) -> tuple[RawInputClassifier, np.ndarray, dict]:
    """(wrapper, input example: two raw training samples as float32, MLmodel metadata) for an ArrayDataModule
    that has been set up."""
    from dlzoo.data.datamodule import _normalise

    raw = _raw_train(dm)
    # the datamodule's own scaling of raw values (x/16 for digits, x/255 for 8-bit pixels, none for signals)
    scale = float(_normalise(dm.name, np.ones(1, dtype=raw.dtype)).astype(np.float32)[0])
    mean, std = dm.stats if dm.standardize else (0.0, 1.0)
    wrapper = RawInputClassifier(net, scale, mean, std, dm.image_size).eval()
    meta = _raw_meta(dm, "classify", raw) | {f"{META_PREFIX}classes": dm.num_classes}
    return wrapper, raw[:2].astype(np.float32), meta


def log_model(net: nn.Module, raw: tuple | None, example_net_input: np.ndarray, pip_requirements: list[str]):
    """Log the network as the run's MLflow Model ``model``: ``raw``, the (wrapper, raw input example, metadata)
    a task gives for a network with its preprocessing (``Task.raw_input_model``: a classifier or regressor on an
    array dataset takes raw samples), else the bare network (``example_net_input`` shows its input)."""
    import mlflow.pytorch

    if raw is None:
        return mlflow.pytorch.log_model(net, name="model", input_example=example_net_input,
                                        pip_requirements=pip_requirements)
    wrapper, example, meta = raw
    return mlflow.pytorch.log_model(wrapper, name="model", input_example=example, metadata=meta,
                                    pip_requirements=pip_requirements)


def network_state(loaded: nn.Module, model_uri: str) -> dict:
    """The network's state dict from a loaded MLflow Model, with or without a raw-input wrapper around it
    (the model's metadata says which)."""
    import mlflow.models

    state = loaded.state_dict()
    if not (mlflow.models.get_model_info(model_uri).metadata or {}).get(f"{META_PREFIX}sample_shape"):
        return state
    return {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
