"""Verdicts from confidence intervals: a check's statistic, measured once per seed, against its expectation
(``"> 0"``, ``"<= 0.5"``).

Each seed trains every variant of a claim (a paired design), so a statistic such as ``a['val/acc'] -
b['val/acc']`` is one paired difference per seed. Over the n seeds its mean gets a two-sided 95% paired t
interval, mean ± t_{0.975, n-1} · s / √n (scipy.stats.t; s the sample standard deviation), and the verdict follows
the interval:

holds          the whole interval lies on the expected side of the threshold
does not hold  it lies wholly on the other side
inconclusive   it straddles the threshold (or one seed only, or a seed's statistic is NaN)

``n_needed`` is the sample size a decisive answer would need with the observed spread: the smallest n with
t_{0.975, n-1} · s / √n < |mean − threshold|. A check on deterministic pipeline results (no seeds) compares its
single value with the threshold directly (method ``exact``).

A claim holds when all its checks hold and does not hold when none does; it partly holds when some checks hold
and others do not, and is inconclusive otherwise.
"""

from __future__ import annotations

import math
import operator
import re
import statistics

from dlzoo.errors import ConfigError

HOLDS, FAILS, INCONCLUSIVE, PARTLY = "holds", "does not hold", "inconclusive", "partly holds"
UNCLEAR = INCONCLUSIVE  # the name older result files used ("unclear") maps to this verdict in the report
LEVEL = 0.95
T_METHOD, EXACT_METHOD = "95% paired t", "exact"
N_NEEDED_MAX = 100_000
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


def t_quantile(n: int) -> float:
    """t_{(1+LEVEL)/2, n-1}: the two-sided LEVEL interval's quantile with n values."""
    from scipy.stats import t

    return float(t.ppf((1 + LEVEL) / 2, n - 1))


def n_needed(std: float, distance: float) -> int | None:
    """Smallest n >= 2 with t_{n-1} · std / √n < distance (the interval then clears the threshold if the mean and
    spread stay as observed); None when no n up to N_NEEDED_MAX does (e.g. the mean sits on the threshold)."""
    import numpy as np
    from scipy.stats import t

    if distance <= 0:
        return None
    if std == 0:
        return 2
    ns = np.arange(2, N_NEEDED_MAX + 1)
    ok = np.nonzero(t.ppf((1 + LEVEL) / 2, ns - 1) * std / np.sqrt(ns) < distance)[0]
    return int(ns[ok[0]]) if ok.size else None


def interval(values: list[float], seeded: bool = True) -> dict:
    """mean, CI low/high, n, method for the per-seed values; ``seeded=False``: one deterministic value."""
    s = summarize(values)
    if not seeded:
        return s | {"ci_low": s["mean"], "ci_high": s["mean"], "method": EXACT_METHOD}
    if s["n"] < 2:  # no spread to judge from: no interval (null in the JSON), an inconclusive verdict
        return s | {"ci_low": None, "ci_high": None, "method": T_METHOD}
    half = t_quantile(s["n"]) * s["std"] / math.sqrt(s["n"])
    return s | {"ci_low": s["mean"] - half, "ci_high": s["mean"] + half, "method": T_METHOD}


def interval_verdict(low: float, high: float, expect: str) -> str:
    """holds when [low, high] lies on the expected side of the threshold, does not hold when wholly on the
    other side, inconclusive when it straddles it."""
    op, threshold = parse_expectation(expect)
    cmp = _OPS[op]
    if cmp(low, threshold) and cmp(high, threshold):
        return HOLDS
    if not cmp(low, threshold) and not cmp(high, threshold):
        return FAILS
    return INCONCLUSIVE


def judge_values(values: list[float], expect: str, seeded: bool = True) -> dict:
    """The check's interval over ``values`` (one per seed; NaN = a diverged seed) and its verdict:
    {verdict, mean, std, n, ci_low, ci_high, method, n_needed, nan}."""
    _, threshold = parse_expectation(expect)
    finite = [v for v in values if not math.isnan(v)]
    nan = len(values) - len(finite)
    if not finite:
        return {"verdict": INCONCLUSIVE, "n": 0, "nan": nan, "method": T_METHOD if seeded else EXACT_METHOD,
                "n_needed": None}
    res = interval(finite, seeded) | {"nan": nan}
    undecidable = nan or res["ci_low"] is None
    res["verdict"] = INCONCLUSIVE if undecidable else interval_verdict(res["ci_low"], res["ci_high"], expect)
    res["n_needed"] = n_needed(res["std"], abs(res["mean"] - threshold)) if seeded and res["n"] > 1 else None
    return res


def check_verdict(values: list[float], expect: str, seeded: bool = True) -> str:
    return judge_values(values, expect, seeded)["verdict"]


def claim_verdict(check_verdicts: list[str]) -> str:
    if all(v == HOLDS for v in check_verdicts):
        return HOLDS
    if all(v == FAILS for v in check_verdicts):
        return FAILS
    return PARTLY if HOLDS in check_verdicts and FAILS in check_verdicts else INCONCLUSIVE


def combined_verdict(verdicts: list[str]) -> str:
    """One verdict from the same claim (or check) judged on several machines / thread counts: the common one
    when they agree, inconclusive when they differ (a verdict that depends on the machine is not a finding)."""
    return verdicts[0] if len(set(verdicts)) == 1 else INCONCLUSIVE
