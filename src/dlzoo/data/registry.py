"""Datasets added by a file: ``@register_dataset(num_classes=...)`` on a loader in ``src/dlzoo/data/sources/``.

A loader returns numpy arrays, either ``{"x", "y"}`` (the ``prepare`` stage carves test and validation
splits, stratified for classes) or ``{"x_train", "y_train", "x_test", "y_test"}`` (the test split is kept,
validation is carved from train). It may take ``seed`` (``prepare.seed``) and ``data_dir`` (the project's
``data/`` folder, for a loader that reads files the user put there) as keyword arguments. Every module of
``dlzoo.data.sources`` is imported on first use (``dlzoo.plugins``), so a dataset is that file plus
``conf/data/<name>.yaml`` (``name: <name>``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dlzoo.errors import ConfigError, DataError

ARRAY_KEYS = ({"x", "y"}, {"x_train", "y_train", "x_test", "y_test"})


@dataclass(frozen=True)
class DatasetSource:
    name: str
    load: Callable[..., dict[str, np.ndarray]]
    num_classes: int | None  # None: real-valued targets (task=regress, one network output)

    @property
    def task(self) -> str:
        return "classify" if self.num_classes else "regress"

    @property
    def outputs(self) -> int:
        return self.num_classes or 1

    def arrays(self, seed: int, data_dir: Path) -> dict[str, np.ndarray]:
        """Call the loader with the arguments it takes and check what it returns."""
        accepted = inspect.signature(self.load).parameters
        kwargs = {k: v for k, v in {"seed": seed, "data_dir": data_dir}.items() if k in accepted}
        arrays = self.load(**kwargs)
        if not isinstance(arrays, dict) or set(arrays) not in ARRAY_KEYS:
            got = sorted(arrays) if isinstance(arrays, dict) else type(arrays).__name__
            raise DataError(f"dataset {self.name!r}: its loader returned {got}; it must return a dict with keys "
                            f"{sorted(ARRAY_KEYS[0])} or {sorted(ARRAY_KEYS[1])}")
        return {k: np.asarray(v) for k, v in arrays.items()}


_SOURCES: dict[str, DatasetSource] = {}


def register_dataset(name: str | None = None, *, num_classes: int | None) -> Callable:
    """Register a loader under ``name`` (default: the function's name). ``num_classes=None`` for regression."""
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 2):
        raise ConfigError(f"register_dataset(num_classes={num_classes!r}): an integer >= 2, or None for regression")

    def wrap(fn: Callable[..., dict[str, np.ndarray]]) -> Callable:
        key = name or fn.__name__
        if key in _SOURCES:
            raise ValueError(f"dataset {key!r} is already registered")
        _SOURCES[key] = DatasetSource(key, fn, num_classes)
        return fn

    return wrap


def _discover() -> None:
    import dlzoo.data.sources  # noqa: F401  (imports every module in it)
    from dlzoo.plugins import load_entry_points

    load_entry_points()


def list_datasets() -> list[str]:
    _discover()
    return sorted(_SOURCES)


def get_dataset(name: str) -> DatasetSource | None:
    _discover()
    return _SOURCES.get(name)


def outputs(task: str) -> dict[str, int]:
    """Registered dataset -> number of network outputs, for the datasets of one task (classify / regress)."""
    _discover()
    return {n: s.outputs for n, s in _SOURCES.items() if s.task == task}
