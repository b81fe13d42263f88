"""What `make run` prints: Lightning's model summary with real FLOPs, then the leaderboard once (the report
stage writes the report quietly; the Makefile prints the leaderboard after `dvc repro`), and last a line
saying where the report and the MLflow UI are. The report stage's command and the Makefile's recipe are
read from dvc.yaml and the Makefile, and run as they are."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import yaml

from conftest import ROOT, run_cli


def make_recipe(target: str) -> list[str]:
    """The recipe lines of a Makefile target (without the `@` that silences echoing)."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{target}:", line))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip().lstrip("@"))
    return recipe


def test_summary_has_real_flops_and_the_leaderboard_prints_once(project):
    res = run_cli(["-m", "dlzoo.train", "model=mlp", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                   "trainer.enable_progress_bar=false", "train.metrics=metrics/digits_mlp.json",
                   f"output_dir={project / 'artifacts/runs/digits_mlp'}"], project)
    assert res.returncode == 0, res.stderr[-3000:]
    # Lightning's summary: real FLOPs (the mlp's forward on one 8x8 digit), not a column of zeros
    summary = res.stdout + res.stderr
    total = re.search(r"Total FLOPs: (\S+ ?[KMG]?)\s*$", summary, re.M)
    assert total and total.group(1).strip() not in ("0", ""), summary[-2000:]
    assert re.search(r"│ 0 │ net\s+│ MLP\s+│[^│]+│[^│]+│\s+[1-9][\d.]* K\s+│", summary), summary[-2000:]

    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["report"]["cmd"]
    shell = "; ".join([stage, *make_recipe("run")]).replace("python -m", "$PY -m")
    out = subprocess.run(["bash", "-c", shell], cwd=project, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PY": sys.executable, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("Leaderboard (test split)") == 1, out.stdout
    assert out.stdout.count("digits_mlp") == 1
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("Report: reports/index.html | MLflow UI: `make ui`, then http://127.0.0.1:5000"), last
    assert (project / "reports" / "index.html").exists()


def test_where_line_before_the_report_is_built(tmp_path):
    from dlzoo.report.cli import where_line

    assert "Report: not built yet (`dvc repro report`)" in where_line(tmp_path / "reports", tmp_path)
