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


PATHS_KEY = "paths"  # the config node (conf/config.yaml): machine-local, never part of a run's identity


def bind(cfg, root: Path | None = None):
    """Fill ``cfg.paths`` for this machine, in place, and return ``cfg``: ``paths.root`` becomes an absolute
    folder (``root``, else the configured one, else the project the command runs in) and every other entry an
    absolute path under it. Entry points call this once; everything below them takes its paths from the
    config (``paths_of``) and never looks at the working directory. A config without the node (a job config the
    pipeline's configure stage wrote, a trained run's config.yaml) gets the defaults."""
    from omegaconf import OmegaConf, open_dict

    node = OmegaConf.to_container(cfg[PATHS_KEY]) if cfg.get(PATHS_KEY) is not None else {}
    base = Path(root or node.get("root") or project_root()).resolve()
    bound = {"root": str(base)}
    for key, default in DEFAULT_PATHS.items():
        value = Path(node.get(key) or default)
        bound[key] = str(value if value.is_absolute() else base / value)
    with open_dict(cfg):
        cfg[PATHS_KEY] = bound
    return cfg


DEFAULT_PATHS = {"splits": "artifacts/splits"}  # what conf/config.yaml's paths node holds, for configs without it


def unbind(container: dict) -> dict:
    """A resolved config as a plain dict without the machine-local ``paths`` node: what a run records (params,
    config.yaml) and the pipeline's configure stage writes, so they are the same on every machine."""
    return {k: v for k, v in container.items() if k != PATHS_KEY}


def paths_of(cfg) -> tuple[Path, Path]:
    """(root, splits) of a bound config (``bind``); a config no entry point bound is refused, naming the fix."""
    node = cfg.get(PATHS_KEY) if cfg is not None else None
    if not node or not node.get("root") or not Path(node["root"]).is_absolute():
        raise ValueError("the config's paths are not bound to a project: call dlzoo.paths.bind(cfg) first "
                         "(dlzoo.configure.compose and the command-line entry points do)")
    return Path(node["root"]), Path(node["splits"])


def store_root(root: Path | None = None) -> Path:
    """The folder of the project's MLflow store (``mlflow.db``, ``mlartifacts/``): the project root (``root``,
    else the one the command runs in), except in a DVC experiment that runs in a temporary workspace (``dvc exp
    run --queue`` / ``--temp``, under ``<repo>/.dvc/tmp/exps/``): there DVC's ``DVC_ROOT`` names the repository
    the experiment belongs to, so its runs land in that repository's store and outlive the workspace."""
    root = Path(root).resolve() if root is not None else project_root()
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

