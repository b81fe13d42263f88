"""Report section of the detectors: mAP@0.5, mAP@[.5:.95], per-class AP and speed, and one test plot."""

from __future__ import annotations

import shutil
from pathlib import Path


def _f(v, digits: int = 3) -> str:
    return "" if v is None else f"{float(v):.{digits}f}"


def section(rows: list[dict], out_dir: Path, metrics_dir: Path | None = None) -> str | None:
    rows = sorted((r for r in rows if r.get("task") == "detect"), key=lambda r: -float(r.get("test/map", 0.0)))
    if not rows:
        return None
    classes = sorted({k for r in rows for k in r if k.startswith("test/ap_")}, key=lambda k: int(k.split("_")[-1]))
    lines = ["## Object detection: digits on 64x64 canvases\n",
             "Test split (1000 canvases of 1-4 held-out digits). mAP by pycocotools' COCOeval; images/s = "
             "forward + decoding + NMS on the CPU, batches of the evaluation loader.\n",
             "| experiment | model | mAP@0.5 | mAP@[.5:.95] | images/s | params | epochs |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['model']} | {_f(r.get('test/map50'))} | {_f(r.get('test/map'))} | "
                     f"{_f(r.get('test/images_per_s'), 0)} | {r.get('num_params') or 0:,} | {r.get('epochs', '')} |")
    lines += ["", "AP@[.5:.95] per class:\n", "| experiment | " + " | ".join(k.split("_")[-1] for k in classes) + " |",
              "|---|" + "---|" * len(classes)]
    lines += [f"| {r['name']} | " + " | ".join(_f(r.get(k), 2) for k in classes) + " |" for r in rows]
    for r in rows:
        plot = Path(r.get("detections_plot") or "")
        if plot.is_file():
            out_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(plot, out_dir / f"detections_{r['name']}.png")
            lines += ["", f"![{r['name']} test detections](detections_{r['name']}.png)"]
    return "\n".join(lines) + "\n"
