"""Compose the Hydra config (``conf/``) with overrides and write it, resolved, to a YAML file.

The pipeline's ``configure`` stages run this for each experiment of the matrix, so a training stage depends
on exactly its own composed config and an edit under ``conf/`` re-runs only what it changes:

    python -m dlzoo.configure --out artifacts/configs/x.yaml --job --from-params x experiment=x
    python -m dlzoo.configure --out params.yaml --params             # the DVC params file (`make params`)
    DLZOO_TRAINER=gpu python -m dlzoo.configure --out artifacts/configs/x.yaml --job experiment=x  # on a GPU

``--job`` leaves out the ``pipeline`` lists (what dvc.yaml iterates over; no training run reads them), so that
adding an experiment or a claim to the suite does not change, and re-train, every other experiment.

``params.yaml`` (``--params``) holds what DVC tracks as parameters: the pipeline's lists, the ``prepare``
settings and, per experiment, an ``overrides`` section (empty by default) that ``--from-params NAME`` adds on
top of ``conf/``: ``dvc exp run -S '+overrides.digits_resnet18.optimizer.lr=0.01'`` re-configures and
re-trains that experiment only, and ``dvc params diff`` / ``dvc exp show`` list exactly what was changed.
A string value of a config group (``+overrides.main.model=mlp``) picks that group's option; with values of
that group too, name the option as ``_option_`` (``+overrides.main.optimizer._option_=sgd`` and
``+overrides.main.optimizer.lr=0.1``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dlzoo.paths import PATHS_KEY, bind, conf_dir, project_root

MAIN = "main"  # the configuration of the train_main stage: conf/ defaults plus its overrides
OPTION = "._option_"  # `optimizer._option_: sgd` picks a group's option and leaves room for its values


def compose(overrides: list[str] | None = None, config_name: str = "config"):
    """The composed, resolved config, its ``paths`` bound to the project the command runs in (``paths.bind``):
    the entry of library callers (comparisons, searches, claims, benchmarks, notebooks)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=list(overrides or []))
    OmegaConf.resolve(cfg)
    return bind(cfg)


def with_trainer(overrides: list[str]) -> list[str]:
    """The overrides plus ``trainer=$DLZOO_TRAINER`` where that is set (``make run TRAINER=gpu`` sets it for the
    pipeline's configure stages) and the overrides choose no trainer preset themselves."""
    preset = os.environ.get("DLZOO_TRAINER", "").strip()
    if not preset or any(o.lstrip("+~").startswith("trainer=") for o in overrides):
        return list(overrides)
    return [f"trainer={preset}", *overrides]


def _hydra_value(v) -> str:
    """``v`` in Hydra's override grammar (strings quoted, so any character is safe)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_hydra_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_hydra_value(x)}" for k, x in v.items()) + "}"
    return "'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _flatten(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):  # an empty section (all its overrides removed) overrides nothing
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def params_overrides(name: str, params_file: Path | None = None) -> list[str]:
    """The Hydra overrides that ``params.yaml``'s ``overrides.<name>`` section holds: a nested value becomes
    ``a.b=value``; a string at the top of a config group (``model: mlp``) picks that group's option, as does
    ``_option_`` inside it when its values change too (``optimizer: {_option_: sgd, lr: 0.1}``)."""
    from omegaconf import OmegaConf

    params_file = params_file or project_root() / "params.yaml"
    if not params_file.exists():
        sys.exit(f"error: {params_file} is missing: run `make params` (python -m dlzoo.configure --out params.yaml --params)")
    section = OmegaConf.to_container(OmegaConf.load(params_file)).get("overrides") or {}
    if name not in section:
        sys.exit(f"error: {params_file} has no overrides.{name}: run `make params` after adding {name} to the "
                 f"pipeline (known: {', '.join(section)})")
    out = []
    for key, value in _flatten(section[name] or {}):
        if key.endswith(OPTION):  # optimizer._option_: sgd -> the group choice optimizer=sgd
            out.append(f"{key[:-len(OPTION)]}={value}")
        elif "." not in key and isinstance(value, str) and (conf_dir() / key).is_dir():
            out.append(f"{key}={value}")
        else:
            out.append(f"{key}={_hydra_value(value)}")
    return out


def params_file(existing: Path | None = None) -> dict:
    """The DVC params file: the pipeline's lists, ``prepare``, and an ``overrides`` section per experiment
    (the ``main`` configuration, the default and the extra suite), keeping the overrides ``existing`` has."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(compose([]))
    old = {}
    if existing is not None and existing.exists():
        old = OmegaConf.to_container(OmegaConf.load(existing)).get("overrides") or {}
    names = [MAIN, *cfg["pipeline"]["experiments"], *cfg["pipeline"]["extra_experiments"]]
    return {"prepare": cfg["prepare"], "pipeline": cfg["pipeline"],
            "overrides": {n: old.get(n) or {} for n in names}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="YAML file to write")
    ap.add_argument("--job", action="store_true", help="one job's config: without the pipeline's lists")
    ap.add_argument("--params", action="store_true", help="write the DVC params file (params.yaml), not a config")
    ap.add_argument("--from-params", metavar="NAME", default=None,
                    help="add the overrides params.yaml holds for experiment NAME (its overrides.NAME section)")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=digits_mlp optimizer.lr=0.01")
    args = ap.parse_args(argv)
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict

    overrides = list(args.overrides)
    if args.from_params:
        overrides += params_overrides(args.from_params)
    try:
        cfg = OmegaConf.create(params_file(args.out)) if args.params else compose(with_trainer(overrides))
    except HydraException as exc:
        where = f" (params.yaml overrides.{args.from_params})" if args.from_params else ""
        sys.exit(f"error{where}: {exc}")
    with open_dict(cfg):
        cfg.pop(PATHS_KEY, None)  # this machine's folders: the file is the same on every machine (DVC hashes it)
        if args.job:
            cfg.pop("pipeline", None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(OmegaConf.to_yaml(cfg), encoding="utf-8")


if __name__ == "__main__":
    main()
