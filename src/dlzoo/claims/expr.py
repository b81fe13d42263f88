"""The small expression language of a claim's statistics, e.g. ``mean(adam.curves['train/loss']) /
mean(sgd.curves['train/loss'])``.

Names are the claim's variants (that seed's figures, read with ``v['val/acc']``, ``v.curves['train/loss']``,
``v.epochs``) and its ``inputs`` (metrics JSONs of the pipeline). Only arithmetic, comparisons, subscripts,
attribute reads of those figures and the functions in FUNCTIONS are allowed: a claim file is data, and ``eval`` of
it would run any Python. Written here because the need is small (~40 lines) and a general expression engine (e.g.
simpleeval) would be one more dependency for it.
"""

from __future__ import annotations

import ast
import math
import operator
import statistics
from typing import Any

from dlzoo.errors import ConfigError


def _argmin(xs: list[float]) -> int:
    return min(range(len(xs)), key=xs.__getitem__)


def _argmax(xs: list[float]) -> int:
    return max(range(len(xs)), key=xs.__getitem__)


FUNCTIONS = {
    "mean": statistics.fmean, "min": min, "max": max, "abs": abs, "len": len, "log10": math.log10, "log": math.log,
    "sqrt": math.sqrt, "first": lambda xs: xs[0], "last": lambda xs: xs[-1], "argmin": _argmin, "argmax": _argmax,
    # ifnan(x, default): a diverged run's figures are NaN; a claim may count them at, e.g., chance level
    "ifnan": lambda x, default: default if math.isnan(x) else x,
}
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow}
_CMPOPS = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}


class Figures(dict):
    """One variant's figures: ``v['val/acc']`` and ``v.curves`` / ``v.epochs`` both read the same dict."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def evaluate(text: str, names: dict[str, Any]) -> float:
    """The value of ``text`` with ``names`` bound; ConfigError names the expression and what is wrong in it."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ConfigError(f"statistic {text!r} is not an expression: {exc.msg}") from None

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in names:
                return names[node.id]
            raise ConfigError(f"statistic {text!r}: unknown name {node.id!r}; names: {', '.join(sorted(names))}")
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMPOPS:
            return float(_CMPOPS[type(node.ops[0])](ev(node.left), ev(node.comparators[0])))
        if isinstance(node, ast.Subscript):
            container, key = ev(node.value), ev(node.slice)
            try:
                return container[key]
            except (KeyError, IndexError, TypeError):
                raise ConfigError(f"statistic {text!r}: no [{key!r}] in {ast.unparse(node.value)}") from None
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            value = ev(node.value)
            if isinstance(value, Figures) and node.attr in value:
                return value[node.attr]
            raise ConfigError(f"statistic {text!r}: no .{node.attr} in {ast.unparse(node.value)}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            if node.func.id not in FUNCTIONS:
                raise ConfigError(f"statistic {text!r}: unknown function {node.func.id!r}; "
                                  f"functions: {', '.join(sorted(FUNCTIONS))}")
            return FUNCTIONS[node.func.id](*[ev(a) for a in node.args])
        raise ConfigError(f"statistic {text!r}: {ast.unparse(node)!r} is not allowed (arithmetic, comparisons, "
                          f"x['key'], x.curves and {', '.join(sorted(FUNCTIONS))} are)")

    value = ev(tree)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"statistic {text!r} gives {type(value).__name__}, not a number")
    return float(value)
