"""The docs cannot drift from the code: their marked blocks run, their relative links resolve.

Convention in README.md and docs/*.md:

- a fenced ``bash`` block right after a line ``<!-- test: run -->`` is run (``bash -euo pipefail``);
- a fenced block right after ``<!-- test: file PATH -->`` is written to PATH (a walk-through's new file).

The blocks of one page run in order, in one throw-away copy of the project (src/, conf/, the splits, its own
MLflow store), so a page's later commands see its earlier files. Keep marked blocks cheap: composing
configs, ``--help``, ``debug=fdr`` trainings, reports on that small store.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = re.compile(r"^<!-- test: (run|file (\S+)) -->\n```(\w*)\n(.*?)^```", re.M | re.S)
# Pages and pictures that other parts of the project provide (checked once they are there).
PROVIDED_ELSEWHERE: set[str] = set()


def blocks(page: Path) -> list[tuple[str, str | None, str]]:
    """(kind, path, text) of every marked block of a page, in order."""
    return [("file" if m.group(2) else "run", m.group(2), m.group(4)) for m in MARK.finditer(page.read_text())]


def test_the_convention_finds_blocks():
    found = {p.name: len(blocks(p)) for p in PAGES}
    assert found.get("README.md", 0) >= 1 and found.get("extending.md", 0) >= 4, found
    # a marker must sit right above a fence: a marker followed by anything else is a mistake
    for page in PAGES:
        text = page.read_text()
        assert text.count("<!-- test: ") == len(blocks(page)), f"{page.name}: a test marker not above a fence"


def doc_project(dest: Path, splits_dir: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for d in ("src", "conf"):
        shutil.copytree(ROOT / d, dest / d, ignore=ignore)
    for f in ("dvc.yaml", "params.yaml", "Makefile"):
        shutil.copy(ROOT / f, dest / f)
    (dest / "artifacts" / "splits").mkdir(parents=True)
    for d in splits_dir.iterdir():  # one link per dataset: a page may prepare a new one beside them
        os.symlink(d, dest / "artifacts" / "splits" / d.name)
    os.symlink(ROOT / "data", dest / "data")
    return dest


# Pages whose walk-through `make test` already runs with stronger checks: their blocks run in `make test-slow`.
# extending.md: tests/config/test_extending.py adds the same model, dataset and task and checks their runs.
SLOW_PAGES = {"extending.md"}


@pytest.mark.parametrize("page", [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW_PAGES else p
                                  for p in PAGES if blocks(p)], ids=lambda p: p.name)
def test_marked_blocks_run(page, tmp_path, splits_dir):
    proj = doc_project(tmp_path / "proj", splits_dir)
    env = {**os.environ, "PYTHONPATH": str(proj / "src"), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for var in ("MLFLOW_TRACKING_URI", "DLZOO_ROOT"):
        env.pop(var, None)
    for kind, path, text in blocks(page):
        if kind == "file":
            (proj / path).parent.mkdir(parents=True, exist_ok=True)
            (proj / path).write_text(text)
            continue
        res = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=proj, env=env, capture_output=True,
                             text=True, timeout=600)
        assert res.returncode == 0, f"{page.name} block failed:\n{text}\n--- stdout\n{res.stdout[-3000:]}" \
                                    f"\n--- stderr\n{res.stderr[-3000:]}"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # links in code blocks are not links
    missing = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        resolved = (page.parent / target.split("#")[0]).resolve()
        rel = resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else str(resolved)
        if not resolved.exists() and rel not in PROVIDED_ELSEWHERE:
            missing.append(target)
    assert not missing, f"{page.name}: links to missing files {missing}"
