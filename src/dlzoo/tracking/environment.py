"""What produced a run: the thread count it trained with, the package versions, the CPU and its vector ISA, the
GPU, and the lock file (``requirements.lock``) the versions should match. The figures of a run depend on all of
them (oneDNN picks other kernels on AVX-512/AMX than on AVX2; the thread count changes reduction orders), so
every MLflow run carries them as ``env.*`` tags that the UI can filter on (``tags.`env.cpu_isa` = 'AVX2'``).
"""

from __future__ import annotations

import hashlib
import logging
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

from dlzoo.paths import PACKAGE_DIR

log = logging.getLogger(__name__)

LOCK_FILE = "requirements.lock"
# the packages whose versions a run's tags name (the rest are in the lock)
KEY_PACKAGES = ("torch", "lightning", "mlflow", "torchmetrics", "numpy", "scikit-learn", "hydra-core", "dvc")
# /proc/cpuinfo flags -> the vector ISA names people search for, widest last
ISA_FLAGS = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_vnni", "AVX-512-VNNI"),
             ("avx512_bf16", "AVX-512-BF16"), ("amx_tile", "AMX"))


def pin_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count (``runtime.threads``; null keeps torch's default, one thread per
    physical core) before anything is built. A fixed count gives the same reduction order, hence the same
    figures, on a 2-core laptop and a 64-core server, and however loaded either is. Returns the count in use."""
    import torch

    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(int(threads))
    n = torch.get_num_threads()
    log.info("torch intra-op threads: %d (runtime.threads=%s)", n, threads)
    return n


def lock_path(root: Path) -> Path | None:
    """The lock file of the project at ``root``, else the source checkout's (an installed package run from
    elsewhere)."""
    for base in (root, PACKAGE_DIR.parents[1]):
        if (base / LOCK_FILE).is_file():
            return base / LOCK_FILE
    return None


def canonical(name: str) -> str:
    """PEP 503 name: ``Scikit_Learn`` -> ``scikit-learn``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """``name==version`` lines of a pip constraints file -> {canonical name: version}."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            pins[canonical(name.split("[", 1)[0].strip())] = version.split(";", 1)[0].strip()
    return pins


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def installed_versions() -> dict[str, str]:
    """{canonical name: version} of every installed distribution (one pass over the environment)."""
    return {canonical(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}


def public(version: str) -> str:
    """Without the local label: the CPU wheel ``2.13.0+cpu`` is release ``2.13.0``, as a constraints file says."""
    return version.split("+", 1)[0]


def lock_drift(path: Path) -> dict[str, tuple[str | None, str]]:
    """Packages of the lock file ``path`` installed at another version (or missing): {name: (installed, locked)}."""
    drift, installed = {}, installed_versions()
    for name, locked in read_lock(path).items():
        have = installed.get(name)
        if have is None or public(have) != public(locked):
            drift[name] = (have, locked)
    return drift


def describe_drift(drift: dict[str, tuple[str | None, str]], limit: int = 20) -> str:
    items = [f"{n} {have or 'not installed'} (lock {locked})" for n, (have, locked) in sorted(drift.items())]
    more = f", and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_isa() -> str:
    """The vector extensions of this CPU, e.g. ``AVX2,AVX-512,AMX`` (from /proc/cpuinfo's flags)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = next((set(line.split(":", 1)[1].split()) for line in text.splitlines() if line.startswith("flags")), set())
    return ",".join(name for flag, name in ISA_FLAGS if flag in flags) or "none"


def gpu_tags() -> dict[str, str]:
    import torch

    if not torch.cuda.is_available():
        return {"env.gpu": "none"}
    return {"env.gpu": torch.cuda.get_device_name(0), "env.gpu_count": str(torch.cuda.device_count()),
            "env.cuda": str(torch.version.cuda)}


def environment_tags(root: Path) -> dict[str, str]:
    """The ``env.*`` tags of a run (call after :func:`pin_threads`: the thread count is read from torch); the
    lock file is the one of the project at ``root``."""
    import torch

    tags = {"env.python": platform.python_version(), "env.platform": f"{sys.platform}-{platform.machine()}"}
    for name in KEY_PACKAGES:
        tags[f"env.{name}"] = installed_version(name) or "not installed"
    tags |= {"env.cpu": cpu_model(), "env.cpu_isa": cpu_isa(),
             "env.cpu_capability": torch.backends.cpu.get_cpu_capability(),
             "env.torch_threads": str(torch.get_num_threads())} | gpu_tags()
    path = lock_path(root)
    if path is None:
        tags["env.lock_sha256"] = "none"
    else:
        tags["env.lock_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        drift = lock_drift(path)
        tags["env.lock_drift"] = describe_drift(drift, limit=8)[:5000] if drift else "none"
    return tags
