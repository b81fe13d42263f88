"""Extra report sections. Each is ``fn(rows, out_dir) -> str | None``: it gets the metrics rows of every
evaluated experiment (``metrics/*.json``) and the report folder (for plots it writes), and returns a
Markdown section (or None to skip). Append new sections to SECTIONS; keep each in its own module."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

Section = Callable[[list[dict], Path], "str | None"]
SECTIONS: list[Section] = []

from dlzoo.report.sections.architectures import architectures  # noqa: E402

SECTIONS.append(architectures)
