"""Extra report sections. Each is ``fn(rows, out_dir) -> str | None``: it gets the metrics rows of every
evaluated experiment (``metrics/*.json``) and the report folder (for plots it writes), and returns a
Markdown section (or None to skip). Append new sections to SECTIONS; keep each in its own module."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

Section = Callable[[list[dict], Path], "str | None"]
SECTIONS: list[Section] = []

from dlzoo.report.sections import compression  # noqa: E402

SECTIONS.append(compression.section)

from dlzoo.report.sections import sequences  # noqa: E402

SECTIONS.append(sequences.section)

from dlzoo.report.sections import comparisons, regression  # noqa: E402

SECTIONS += [regression.linear_vs_closed_form, comparisons.optimizers, comparisons.regularization,
             comparisons.rnn_dropout]

from dlzoo.report.sections.architectures import architectures  # noqa: E402

SECTIONS.append(architectures)

from dlzoo.report.sections.generative import generative  # noqa: E402

SECTIONS.append(generative)
from dlzoo.report.sections import critical_points  # noqa: E402

SECTIONS.append(critical_points.section)
from dlzoo.report.sections import detection  # noqa: E402

SECTIONS.append(detection.section)
from dlzoo.report.sections import claims  # noqa: E402

SECTIONS.append(claims.section)
