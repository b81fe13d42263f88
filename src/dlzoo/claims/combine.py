"""Merging one suite's verdicts from two runs of it (``python -m dlzoo.claims --combine DIR_A DIR_B``), e.g. at 1
and 2 torch threads, stand-ins for two CPUs: a claim or check whose verdict differs between them is
inconclusive by construction, since a verdict that depends on the machine is not a finding."""

from __future__ import annotations

import json
from pathlib import Path

from dlzoo.claims.verdict import claim_verdict, combined_verdict
from dlzoo.errors import DataError

RUN_FIGURES = ("verdict", "mean", "ci_low", "ci_high", "n", "n_needed")


def _label(result: dict, folder: Path) -> str:
    return f"{result['threads']} threads" if result.get("threads") else folder.name


def combine(a: dict, b: dict, labels: tuple[str, str]) -> dict:
    """``a``'s result (its numbers, runs, notes) with every verdict replaced by the combined one and each run's
    verdicts and intervals kept under ``by_run`` / ``verdicts_by_run``."""
    if a["claim"] != b["claim"] or len(a["checks"]) != len(b["checks"]):
        raise DataError(f"cannot combine claim {a['claim']!r} with {b['claim']!r}: not the same claim and checks")
    out = json.loads(json.dumps(a))
    for ca, cb, c in zip(a["checks"], b["checks"], out["checks"]):
        c["by_run"] = {lab: {k: x.get(k) for k in RUN_FIGURES} for lab, x in zip(labels, (ca, cb))}
        c["verdict"] = combined_verdict([ca["verdict"], cb["verdict"]])
    out["verdicts_by_run"] = dict(zip(labels, (a["verdict"], b["verdict"])))
    out["wall_s_by_run"] = dict(zip(labels, (a.get("wall_s"), b.get("wall_s"))))
    out["verdict"] = combined_verdict([a["verdict"], b["verdict"], claim_verdict([c["verdict"] for c in out["checks"]])])
    return out


def combine_dirs(dir_a: Path, dir_b: Path, out_dir: Path) -> list[dict]:
    """Combine the claims found in both folders; write each to ``out_dir/<claim>.json``."""
    for d in (dir_a, dir_b):
        if not d.is_dir():
            raise DataError(f"{d} is not a folder of verdict JSONs: run `python -m dlzoo.claims NAME --threads N "
                            f"--out {d}/NAME.json` for each claim first (docs/claims-stats.md)")
    names_a, names_b = ({p.stem for p in d.glob("*.json")} for d in (dir_a, dir_b))
    common = sorted(names_a & names_b)
    if not common:
        raise DataError(f"no claim has a verdict in both {dir_a} and {dir_b}")
    missing = sorted(names_a ^ names_b)
    if missing:
        print(f"only in one of the two folders (left out): {', '.join(missing)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for name in common:
        a, b = (json.loads((d / f"{name}.json").read_text()) for d in (dir_a, dir_b))
        labels = (_label(a, dir_a), _label(b, dir_b))
        if labels[0] == labels[1]:
            labels = (str(dir_a), str(dir_b))
        merged = combine(a, b, labels)
        (out_dir / f"{name}.json").write_text(json.dumps(merged, indent=2) + "\n")
        results.append(merged)
    return results
