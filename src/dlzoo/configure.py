"""Compose the Hydra config (``conf/``) with overrides and write it, resolved, to a YAML file.

This is what DVC's Hydra integration does for ``dvc exp run -S ...`` (it writes ``params.yaml``); the
pipeline's ``configure`` stage does the same for each experiment of the matrix, so a training stage
depends on exactly its own composed config and an edit under ``conf/`` re-runs only what it changes.

    python -m dlzoo.configure --out params.yaml                      # the default config (params.yaml)
    python -m dlzoo.configure --out artifacts/configs/x.yaml --job experiment=digits_mlp
    DLZOO_TRAINER=gpu python -m dlzoo.configure --out artifacts/configs/x.yaml --job experiment=digits_mlp

``--job`` leaves out the ``pipeline`` lists (what dvc.yaml iterates over; no training run reads them), so that
adding an experiment or a claim to the suite does not change, and re-train, every other experiment.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dlzoo.paths import conf_dir


def compose(overrides: list[str] | None = None, config_name: str = "config"):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=list(overrides or []))
    OmegaConf.resolve(cfg)
    return cfg


def with_trainer(overrides: list[str]) -> list[str]:
    """The overrides plus ``trainer=$DLZOO_TRAINER`` where that is set (``make run TRAINER=gpu`` sets it for the
    pipeline's configure stages) and the overrides choose no trainer preset themselves."""
    preset = os.environ.get("DLZOO_TRAINER", "").strip()
    if not preset or any(o.lstrip("+~").startswith("trainer=") for o in overrides):
        return list(overrides)
    return [f"trainer={preset}", *overrides]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="YAML file to write")
    ap.add_argument("--job", action="store_true", help="one job's config: without the pipeline's lists")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=digits_mlp optimizer.lr=0.01")
    args = ap.parse_args(argv)
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict

    try:
        cfg = compose(with_trainer(args.overrides))
    except HydraException as exc:
        sys.exit(f"error: {exc}")
    if args.job:
        with open_dict(cfg):
            cfg.pop("pipeline", None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(OmegaConf.to_yaml(cfg), encoding="utf-8")


if __name__ == "__main__":
    main()
