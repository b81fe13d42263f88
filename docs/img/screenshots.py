"""Re-take the MLflow UI screenshots of docs/mlflow.md from a store with a few real runs.

    python docs/img/screenshots.py --store /path/to/project/mlflow.db --experiment classify-digits [--runs ID ID]

Starts ``mlflow ui`` on loopback port 5099, opens the experiment page (Model-training view) and the compare
view of two runs (``--runs``; default the experiment's two newest) in headless Chromium (Debian's
``chromium``), and writes ``mlflow-experiment.png`` and ``mlflow-compare.png`` next to this file: cropped
to the page (the UI's assistant panel left out) and reduced to 64 colours. The crops are at fixed
positions: look at the PNGs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import requests
from PIL import Image

HERE = Path(__file__).resolve().parent


def shoot(url: str, png: Path, size: str) -> Image.Image:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("error: no chromium: `apt-get install -y chromium`")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--window-size={size}",
                    "--virtual-time-budget=30000", f"--screenshot={png}", url], check=True, capture_output=True,
                   timeout=300)
    return Image.open(png).convert("RGB")


def save(img: Image.Image, name: str) -> None:
    img.quantize(64).save(HERE / name, optimize=True)
    print(f"{HERE / name}: {img.size[0]}x{img.size[1]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True, help="the sqlite file of an MLflow store")
    ap.add_argument("--experiment", default="classify-digits")
    ap.add_argument("--runs", nargs=2, default=None, help="the two run ids to compare")
    args = ap.parse_args()
    uri = f"sqlite:///{args.store.resolve()}"
    exp = mlflow.MlflowClient(uri).get_experiment_by_name(args.experiment)
    newest = mlflow.MlflowClient(uri).search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"],
                                                  max_results=2)
    run_ids = args.runs or [r.info.run_id for r in newest]
    port = 5099
    ui = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
                           "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if requests.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        tmp = Path(tempfile.mkdtemp())
        page = shoot(f"{base}/#/experiments/{exp.experiment_id}?workflowType=machine_learning",
                     tmp / "exp.png", "1700,700")
        save(page.crop((0, 0, 1262, 360)), "mlflow-experiment.png")
        ids = json.dumps(run_ids, separators=(",", ":"))
        tall = shoot(f"{base}/#/compare-runs?runs={ids}&experiments=[\"{exp.experiment_id}\"]",
                     tmp / "compare.png", "1400,3800")
        out = Image.new("RGB", (830, 1360), "white")  # title, plot and run details; then the metrics table
        out.paste(tall.crop((190, 0, 1020, 960)), (0, 0))
        out.paste(tall.crop((190, 1610, 1020, 2010)), (0, 960))
        save(out, "mlflow-compare.png")
    finally:
        ui.terminate()
        ui.wait(timeout=30)


if __name__ == "__main__":
    main()
