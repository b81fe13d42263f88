"""Where things live. The project root is the nearest parent of the working directory holding
``dvc.yaml`` (so commands work from a sub-folder and from a temporary copy of the repo)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root(start: Path | None = None) -> Path:
    env = os.environ.get("DLZOO_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for p in (here, *here.parents):
        if (p / "dvc.yaml").exists() and (p / "conf").is_dir():
            return p
    return here


def store_root() -> Path:
    """The folder of the project's MLflow store (``mlflow.db``, ``mlartifacts/``): the project root, except in a
    DVC experiment that runs in a temporary workspace (``dvc exp run --queue`` / ``--temp``, under
    ``<repo>/.dvc/tmp/exps/``): there DVC's ``DVC_ROOT`` names the repository the experiment belongs to, so its
    runs land in that repository's store and outlive the workspace."""
    root = project_root()
    dvc_root = os.environ.get("DVC_ROOT")
    if dvc_root and root.is_relative_to(Path(dvc_root).resolve() / ".dvc"):
        return Path(dvc_root).resolve()
    return root


def report_json(result: dict, path: Path | None) -> None:
    """Print a command's result as JSON and, when ``path`` is given (a DVC ``metrics:`` file), write it there."""
    import json

    text = json.dumps(result, indent=2)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    print(text)


def conf_dir() -> Path:
    """The Hydra config folder: ``<root>/conf`` of the project being worked on, else the source checkout's."""
    root_conf = project_root() / "conf"
    if root_conf.is_dir():
        return root_conf
    return PACKAGE_DIR.parents[1] / "conf"


DATA_FIX_HINT = "run `make data` (materialises the embedded datasets and checks them against data.dvc), or `dvc pull` where a DVC remote is set up"
SPLITS_FIX_HINT = "run `dvc repro prepare` (or `python -m dlzoo.prepare`)"


def suite_metrics_dirs(metrics_dir: Path | None = None) -> tuple[Path, Path]:
    """(the default pipeline's metrics folder, the extra suite's beside it): the project's ``metrics/`` and
    ``metrics-extra/`` by default; for a report built from ``--metrics-dir X``, ``X`` and ``metrics-extra/``
    beside ``X`` (where the leaderboard reads the extra suite's rows too)."""
    folder = Path(metrics_dir) if metrics_dir is not None else project_root() / "metrics"
    return folder, folder.parent / "metrics-extra"

