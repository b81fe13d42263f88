"""The package's import structure: imports flow one way (docs/architecture.md), lazy imports included.

Read from the source with `ast` (every `import` statement, also those inside functions, and the parent
packages an import runs), so a cycle is caught before it bites at import time in some order of calls.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# The layers below the builders: they must not reach up into what builds, runs or reports them.
LOWER = ("dlzoo.models", "dlzoo.data", "dlzoo.training", "dlzoo.tasks", "dlzoo.tracking",
         "dlzoo.errors", "dlzoo.paths", "dlzoo.console", "dlzoo.plugins")
UPPER = ("dlzoo.builders", "dlzoo.train", "dlzoo.evaluate", "dlzoo.search", "dlzoo.compare", "dlzoo.claims",
         "dlzoo.compress", "dlzoo.report", "dlzoo.predict", "dlzoo.sample_quality", "dlzoo.configure",
         "dlzoo.prepare", "dlzoo.scores", "dlzoo.accelerators")
# Drawing helpers that the tasks use for their figures; allowed from any layer because they import no dlzoo module.
LEAVES = ("dlzoo.report.plots",)


def _in(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def import_graph() -> dict[str, set[str]]:
    """module -> the dlzoo modules it imports anywhere in its body, and the parent packages those run."""
    files = {}
    for f in SRC.rglob("*.py"):
        parts = f.relative_to(SRC).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f

    def known(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for mod, f in files.items():
        package = mod if f.name == "__init__.py" else mod.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, base] if base else up)
                names = [f"{base}.{a.name}" for a in node.names] + [base]
            for name in names:
                target = known(name) if name.startswith("dlzoo") else None
                while target and target != "dlzoo":  # importing a.b.c runs a/__init__ and a/b/__init__ too
                    if target != mod and not mod.startswith(target + "."):
                        targets.add(target)
                    target = target.rpartition(".")[0]
        graph[mod] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_lazy_imports_included():
    graph = import_graph()
    assert "dlzoo.builders" in graph and "dlzoo.tracking.runs" in graph["dlzoo.builders"]  # the reader sees lazy imports
    assert cycles(graph) == []


def test_lower_layers_do_not_import_the_layers_that_use_them():
    graph = import_graph()
    # a leaf and the packages importing it runs (their __init__), which must import nothing of dlzoo either
    leaves = {p for leaf in LEAVES for p in (leaf, *(leaf.rsplit(".", k)[0] for k in range(1, leaf.count("."))))}
    upward = {m: sorted(t for t in targets if _in(t, UPPER) and t not in leaves)
              for m, targets in graph.items() if _in(m, LOWER)}
    assert {m: t for m, t in upward.items() if t} == {}
    assert {leaf: sorted(t for t in graph[leaf] if t not in leaves) for leaf in leaves} == {leaf: [] for leaf in leaves}


def test_a_report_from_another_metrics_folder_reads_its_compression_results_not_the_projects(tmp_path, monkeypatch):
    """`dlzoo.report --metrics-dir X` builds from X: its compression rows come from X/compress, not from the
    working directory's metrics/compress."""
    import json

    from dlzoo.report.sections.compression import load_compress_rows

    elsewhere = tmp_path / "elsewhere" / "metrics"
    (elsewhere / "compress").mkdir(parents=True)
    (elsewhere / "compress" / "m.json").write_text(json.dumps({"none": {"method": "none", "name": "x"}}))
    cwd = tmp_path / "cwd"
    (cwd / "metrics" / "compress").mkdir(parents=True)
    (cwd / "metrics" / "compress" / "m.json").write_text(json.dumps({"none": {"method": "none", "name": "cwd"}}))
    monkeypatch.chdir(cwd)
    assert [r["name"] for r in load_compress_rows(metrics_dir=elsewhere)] == ["x"]
    assert [r["name"] for r in load_compress_rows()] == ["cwd"]


# Modules with a command line (`python -m ...`, `main()`): they find the project the command runs in and pass
# it down. Below them paths come from the config (`paths`, bound by the entry point) or from an argument.
CWD_READERS = ("dlzoo.paths", "dlzoo.train", "dlzoo.evaluate", "dlzoo.compare", "dlzoo.claims.cli",
               "dlzoo.compress.cli", "dlzoo.report.cli", "dlzoo.predict", "dlzoo.sample_quality", "dlzoo.prepare",
               "dlzoo.configure", "dlzoo.data.check", "dlzoo.data.materialize")


def test_only_entry_points_look_for_the_project_in_the_working_directory():
    callers = set()
    for f in SRC.rglob("*.py"):
        parts = f.relative_to(SRC).with_suffix("").parts
        mod = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
                    "project_root", "cwd"):
                callers.add(mod)
    assert {"dlzoo.paths", "dlzoo.prepare"} <= callers  # the scan sees the calls (Path.cwd(), project_root())
    assert sorted(callers - set(CWD_READERS)) == []
    # the builders and the records take the project from their caller
    assert {"dlzoo.builders", "dlzoo.tracking.mlflow_utils", "dlzoo.tracking.environment"}.isdisjoint(callers)


def test_only_command_line_mains_silence_warnings():
    """`console.quiet()` changes the process's warning filters and log levels: a command's `main` may do that for
    its user, a library function (compare, compress, a claim's runner) must leave them as its caller set them."""
    callers = []
    for f in SRC.rglob("*.py"):
        tree = ast.parse(f.read_text())
        for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
            if any(isinstance(c, ast.Call) and getattr(c.func, "id", getattr(c.func, "attr", None)) == "quiet"
                   for c in ast.walk(fn)):  # quiet() or console.quiet()
                callers.append((f.relative_to(SRC).as_posix(), fn.name))
    # the scan sees the calls
    assert ("dlzoo/train.py", "hydra_main") in callers and ("dlzoo/compress/cli.py", "main") in callers
    assert [c for c in callers if c[1] not in ("main", "hydra_main")] == []
