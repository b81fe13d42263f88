"""Verdicts: a check's statistic, measured once per seed, against its expectation (``"> 0"``, ``"<= 0.5"``).

holds          every seed meets the expectation
does not hold  no seed meets it
unclear        the seeds disagree (the effect is within the seed-to-seed spread)

A claim holds when all its checks hold and does not hold when none does; it partly holds when some checks hold and
others do not (each check's verdict is shown), and is unclear otherwise.
"""

from __future__ import annotations

import operator
import re
import statistics

from dlzoo.errors import ConfigError

HOLDS, FAILS, UNCLEAR, PARTLY = "holds", "does not hold", "unclear", "partly holds"
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
_EXPECT = re.compile(r"\s*(>=|<=|>|<)\s*(-?[\d.]+(?:e-?\d+)?)\s*")


def parse_expectation(text: str) -> tuple[str, float]:
    m = _EXPECT.fullmatch(str(text))
    if not m:
        raise ConfigError(f"expect {text!r}: write an operator and a number, e.g. '> 0' or '<= 0.5' "
                          f"(operators: {', '.join(_OPS)})")
    return m.group(1), float(m.group(2))


def summarize(values: list[float]) -> dict[str, float]:
    """mean, sample standard deviation (0 for one value), min, max and n of one statistic over seeds."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def check_verdict(values: list[float], expect: str) -> str:
    op, threshold = parse_expectation(expect)
    met = [_OPS[op](v, threshold) for v in values]
    return HOLDS if all(met) else FAILS if not any(met) else UNCLEAR


def claim_verdict(check_verdicts: list[str]) -> str:
    if all(v == HOLDS for v in check_verdicts):
        return HOLDS
    if all(v == FAILS for v in check_verdicts):
        return FAILS
    return PARTLY if HOLDS in check_verdicts and FAILS in check_verdicts else UNCLEAR
