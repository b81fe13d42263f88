"""What a command-line entry point sets up for its user before any work: quiet logs, and a quick exit.

Third-party libraries print warnings that say nothing to a dlzoo user (the DataLoader's worker count on an
in-memory dataset, Lightning's logger tips, a fresh checkpoint folder) and log every MLflow migration; the
entry points (`dlzoo.train` and its searches, evaluate, predict, sample_quality, compress, compare, claims, the
benchmarks) call ``quiet()`` once. Library functions do not: they leave the process's warning filters as the caller set them.
"""

from __future__ import annotations

import atexit
import gc
import warnings

QUIET_WARNINGS = (
    ".*does not have many workers.*",
    ".*LitLogger.*",
    ".*litlogger.*",
    ".*Checkpoint directory .* exists and is not empty.*",
    ".*The number of training batches .* is smaller than the logging interval.*",
    ".*torch.ao.quantization.*",
    ".*Starting from v1.9.0, `tensorboardX` has been removed.*",
    # MLflow, from the second run of a process on (comparisons, claims, benchmarks): its dataset-source
    # registry holds the local-artifact source twice and says so on every dataset logged
    ".*dataset source can be interpreted in multiple ways.*",
)


def quick_exit() -> None:
    """Make the interpreter's shutdown skip the cycle collection of everything still alive.

    At exit CPython tears its modules down and runs the cycle collector over every object the process still
    tracks; with torch, Lightning and MLflow imported that is millions of objects, seconds of a 2-core CPU --
    paid by every command, so by every DVC stage and every subprocess of the tests.
    ``gc.freeze()`` as the last exit handler moves them to the permanent generation, which those collections
    skip. Everything an exit normally does still happens (the other exit handlers, MLflow's flush of queued
    writes among them, run first: handlers run last-registered first); what no longer happens is calling the
    finalisers of objects kept alive only by reference cycles, whose memory the OS takes back anyway. Only at
    exit: a process that goes on (a test calling ``main()``) collects as before. Registered once however often
    it is called."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


def quiet() -> None:
    import logging

    quick_exit()

    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # "GPU available: False ...", the litlogger tip: under Hydra's logging they print once per Trainer
    for name in ("lightning.pytorch.utilities.rank_zero", "pytorch_lightning.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)


