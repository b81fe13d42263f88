"""What every results file of benchmarks/ records about where and how it was measured.

A figure without its machine is an anecdote: the same script gives other numbers on a CPU with AVX-512 than on
one with AVX2 only (~1.7x for these loops, bf16 14x slower without its instructions), and a cloud machine's name
says nothing about which CPU it is today. So each results file starts with the command that wrote it and the
CPU it ran on, in the words of the ``env.*`` tags of every MLflow run (``dlzoo.tracking.environment``), so a
benchmark figure and a training run can be matched by CPU.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from pathlib import Path


def header(benchmark: str, script: str, argv: list[str] | None) -> dict:
    """``{"benchmark", "date", "command", "cpu", "cpu_isa", ...}`` for ``script`` run with ``argv`` (None: this
    process's own arguments, as when the script is run from the shell)."""
    import torch

    from dlzoo.tracking.environment import cpu_isa, cpu_model

    args = sys.argv[1:] if argv is None else list(argv)
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"benchmark": benchmark, "date": time.strftime("%Y-%m-%d %H:%M"),
            "command": shlex.join(["python", f"benchmarks/{Path(script).name}", *args]),
            "cpu": cpu_model(), "cpu_isa": cpu_isa(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpus": os.cpu_count(), "gpus": gpus, "python": platform.python_version(), "torch": torch.__version__}
