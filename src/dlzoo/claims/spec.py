"""Loading and checking a claim file (conf/claims/<name>.yaml) before anything trains."""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import OmegaConf

from dlzoo.claims.measures import MEASURES
from dlzoo.claims.verdict import parse_expectation
from dlzoo.errors import ConfigError
from dlzoo.paths import conf_dir

KEYS = {"number", "title", "claim", "lecture", "base", "seeds", "variants", "checks", "metrics", "curves", "measure", "inputs",
        "plot", "notes"}
CHECKPOINTS = ("last", "best")


def claim_names() -> list[str]:
    return sorted(p.stem for p in (conf_dir() / "claims").glob("*.yaml"))


def claim_path(name: str) -> Path:
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.exists():
            raise ConfigError(f"claim file {path} does not exist")
        return path
    path = conf_dir() / "claims" / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"claim {name!r} is unknown; choose one of: {', '.join(claim_names())}")
    return path


def load_claim(name: str) -> dict:
    """The claim as a dict, variants normalised to {"overrides": [...], "checkpoint": "last"|"best"}."""
    path = claim_path(name)
    spec = OmegaConf.to_container(OmegaConf.load(path))
    where = str(path)
    unknown = set(spec) - KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; valid keys: {', '.join(sorted(KEYS))}")
    for key in ("claim", "checks"):
        if not spec.get(key):
            raise ConfigError(f"{where}: `{key}` is required")
    variants = {}
    for vname, v in (spec.get("variants") or {}).items():
        if not re.fullmatch(r"[A-Za-z_]\w*", vname):  # a variant is a name in the statistics' expressions
            raise ConfigError(f"{where}: variant {vname!r} must be an identifier (letters, digits, _)")
        v = {"overrides": v} if isinstance(v, list) else dict(v)
        if v.get("checkpoint", "last") not in CHECKPOINTS:
            raise ConfigError(f"{where}: variants.{vname}.checkpoint={v['checkpoint']!r}; choose one of {CHECKPOINTS}")
        variants[vname] = {"overrides": list(v.get("overrides", [])), "checkpoint": v.get("checkpoint", "last")}
    spec["variants"] = variants
    if variants and not spec.get("seeds"):
        raise ConfigError(f"{where}: `seeds` (a list of ints) is required when the claim trains variants")
    for m in spec.get("measure", []):
        if m not in MEASURES:
            raise ConfigError(f"{where}: measure {m!r} is unknown; choose from {', '.join(MEASURES)}")
    for i, check in enumerate(spec["checks"]):
        if not check.get("statistic") or "expect" not in check:
            raise ConfigError(f"{where}: checks[{i}] needs `statistic` and `expect`")
        parse_expectation(check["expect"])
    clash = set(variants) & set(spec.get("inputs") or {})
    if clash:
        raise ConfigError(f"{where}: {sorted(clash)} are both variants and inputs")
    spec["name"] = path.stem
    return spec
