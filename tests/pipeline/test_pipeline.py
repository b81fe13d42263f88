"""The DVC pipeline, run for real with `dvc` in a temporary git copy of the project on a tiny config."""

from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, copy_project

COPY = ["conf", "src", "dvc.yaml", "data.dvc", "params.yaml", "pyproject.toml", ".dvc/config", ".dvcignore", ".gitignore"]


def sh(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    # the stage commands say `python`: it must be this interpreter (the project's .venv)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONWARNINGS": "ignore",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def _shrink(proj: Path) -> None:
    """Two experiments of 2 epochs each instead of the full matrix (conf edits, as a user would make)."""
    cfg = yaml.safe_load((proj / "conf/config.yaml").read_text())
    cfg["pipeline"]["experiments"] = ["digits_mlp", "mnist1d_cnn1d"]
    cfg["pipeline"]["compress"] = {"mnist1d_cnn1d": "quantize_dynamic"}
    (proj / "conf/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    # the optimizer/regularization comparisons have their own tests (test_regress_search_compare.py)
    dvc = yaml.safe_load((proj / "dvc.yaml").read_text())
    del dvc["stages"]["compare"]
    # sample quality needs a generative and a classifier run (tests/tasks/test_generative.py covers it)
    del dvc["stages"]["sample_quality"]
    (proj / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    trainer = yaml.safe_load((proj / "conf/trainer/cpu.yaml").read_text())
    trainer.update(max_epochs=2, enable_progress_bar=False, enable_model_summary=False)
    (proj / "conf/trainer/cpu.yaml").write_text(yaml.safe_dump(trainer))
    for name in ("digits_mlp", "mnist1d_cnn1d"):
        f = proj / "conf/experiment" / f"{name}.yaml"
        f.write_text(re.sub(r"max_epochs: \d+", "max_epochs: 2", f.read_text()))


def git_project(proj: Path, shrink) -> Path:
    """A git repository at ``proj``: a copy of the project, cut down by ``shrink(proj)``, its params.yaml
    rewritten from the cut-down conf/, committed, with data/ checked against data.dvc (and so in the cache)."""
    proj.mkdir(parents=True, exist_ok=True)
    copy_project(proj, COPY)
    shutil.copytree(ROOT / "data", proj / "data")
    shrink(proj)
    py = sys.executable
    sh([py, "-m", "dlzoo.configure", "--out", "params.yaml", "--params"], proj)
    sh(["git", "init", "-q", "-b", "main"], proj)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], proj)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], proj)
    sh([py, "-m", "dlzoo.data.check"], proj)  # data/ matches data.dvc and is now in the cache
    return proj


FIRST_REPRO: dict[Path, subprocess.CompletedProcess] = {}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """The shrunk project after its first `dvc repro`: every test here starts from a reproduced pipeline,
    whichever of them run (`make test` and `make test-slow` select different ones)."""
    proj = git_project(tmp_path_factory.mktemp("pipeline"), _shrink)
    FIRST_REPRO[proj] = sh(["dvc", "repro"], proj)
    return proj


def test_repro_trains_evaluates_and_reports(repo):
    r = FIRST_REPRO[repo]
    assert "Running stage 'prepare'" in r.stdout
    metrics = {p.stem: json.loads(p.read_text()) for p in (repo / "metrics").glob("*.json")}
    assert set(metrics) == {"digits_mlp", "mnist1d_cnn1d", "main"}
    for m in metrics.values():
        assert 0.1 < m["test/acc"] <= 1.0 and m["epochs"] == 2  # epochs trained
    # dvc metrics show lists every experiment's key figures (scores/, numbers only)
    shown = json.loads(sh(["dvc", "metrics", "show", "--json"], repo).stdout)
    files = next(iter(shown.values()))["data"]
    assert {"scores/digits_mlp.json", "scores/mnist1d_cnn1d.json", "scores/main.json"} <= set(files)
    assert files["scores/digits_mlp.json"]["data"] == {"test/acc": pytest.approx(metrics["digits_mlp"]["test/acc"])}
    # the MLflow runs hold the test metrics the metrics files report
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    for m in metrics.values():
        run = client.get_run(m["run_id"])
        assert run.info.status == "FINISHED"
        assert run.data.metrics["test/acc"] == pytest.approx(m["test/acc"])
    # report and dvc plots
    report = (repo / "reports/README.md").read_text()
    assert "digits_mlp" in report and metrics["digits_mlp"]["run_id"] in report
    assert (repo / "artifacts/eval/digits_mlp/predictions.csv").read_text().startswith("actual,predicted")
    # the compress stage: its result nested under the source run, in metrics/compress/ and the report
    compressed = json.loads((repo / "metrics/compress/mnist1d_cnn1d.json").read_text())
    assert compressed["source"]["run_id"] == metrics["mnist1d_cnn1d"]["run_id"]
    q = client.get_run(compressed["quantize_dynamic"]["run_id"])
    assert q.data.tags["mlflow.parentRunId"] == metrics["mnist1d_cnn1d"]["run_id"]
    assert "## Compression" in report and compressed["quantize_dynamic"]["run_id"] in report
    # the DAG has the stages in order
    dag = sh(["dvc", "dag", "--md"], repo).stdout
    for stage in ("prepare", "configure@digits_mlp", "train@digits_mlp", "compress@mnist1d_cnn1d", "report"):
        assert stage in dag
    # train@ evaluates in its own process: the metrics file is that stage's output, the run registered
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert "metrics/digits_mlp.json" in {o["path"] for o in stages["train@digits_mlp"]["outs"]}
    assert metrics["digits_mlp"]["registered"].startswith("digits-mlp/")


def test_report_tables_match_the_mlflow_store(repo):
    """The report's leaderboard (JSON, Markdown and the HTML page) states what the MLflow runs hold."""
    import html.parser

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    groups = json.loads((repo / "reports/leaderboard.json").read_text())
    rows = [r for rs in groups.values() for r in rs]
    assert {r["name"] for r in rows} == {"digits_mlp", "mnist1d_cnn1d", "main"}
    for r in rows:
        run = client.get_run(r["run_id"])
        m, p = run.data.metrics, run.data.params
        assert r["test/acc"] == pytest.approx(m["test/acc"]) and r["flops"] == int(m["model/flops"])
        assert r["train_time_s"] == pytest.approx(m["time/epoch_s"] * r["epochs"], abs=0.1)
        assert p["optimizer._target_"].rsplit(".", 1)[-1] in r["config"] and f"lr={p['optimizer.lr']}" in r["config"]
        history = sorted(client.get_metric_history(r["run_id"], "val/acc"), key=lambda x: x.step)
        assert [v for _, v in r["curve"]] == pytest.approx([h.value for h in history if h.step > 0])
        assert len(r["curve"]) == r["epochs"]

    class Cells(html.parser.HTMLParser):  # the leaderboard rows of index.html, cell by cell
        def __init__(self):
            super().__init__()
            self.rows, self.cell = [], None

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self.cell = ""

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

        def handle_endtag(self, tag):
            if tag in ("td", "th") and self.cell is not None:
                self.rows[-1].append(self.cell.strip())
                self.cell = None

    page = Cells()
    page.feed((repo / "reports/index.html").read_text())
    header = next(row for row in page.rows if row[:2] == ["name", "model"])
    table = {row[header.index("run_id")]: dict(zip(header, row)) for row in page.rows
             if len(row) == len(header) and row != header}
    for r in rows:
        cells = table[r["run_id"]]
        assert cells["test/acc"] == f"{client.get_run(r['run_id']).data.metrics['test/acc']:.4f}"
        assert cells["name"] == r["name"] and cells["flops"] == f"{r['flops']:,}"
    for png in ("curves_digits.png", "curves_mnist1d.png", "accuracy_vs_params.png"):
        assert (repo / "reports" / png).stat().st_size > 5000, png


def test_models_registered_evaluated_and_predicted_by_uri(repo):
    """Evaluation registered each model as <dataset>-<model> with @best; `evaluate` and `predict` take the
    registry URI and give the figures and labels of the pipeline's own evaluation."""
    import mlflow
    import numpy as np

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    metrics = json.loads((repo / "metrics/digits_mlp.json").read_text())
    best = client.get_model_version_by_alias("digits-mlp", "best")
    assert best.run_id == metrics["run_id"] and metrics["registered"].startswith("digits-mlp/")
    env_py = [sys.executable, "-m"]
    out = sh([*env_py, "dlzoo.evaluate", "models:/digits-mlp@best", "--no-register"], repo).stdout
    again = json.loads(out[out.index("{"):])
    assert again["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert len(client.search_model_versions("name='digits-mlp'")) == 1  # --no-register: no new version
    x = np.load(repo / "artifacts/splits/digits/x_test.npy")[:25]
    np.save(repo / "samples.npy", x)
    sh([*env_py, "dlzoo.predict", "models:/digits-mlp/latest", "samples.npy", "--out", "pred.csv"], repo)
    import csv

    predicted = [int(r["label"]) for r in csv.DictReader((repo / "pred.csv").open())]
    pipeline = [int(r["predicted"]) for r in csv.DictReader((repo / "artifacts/eval/digits_mlp/predictions.csv").open())]
    assert predicted == pipeline[:25]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # mlflow.set_tracking_uri() sets it
    r = subprocess.run([sys.executable, "-m", "dlzoo.predict", "models:/digits-nope@best", "samples.npy"], cwd=repo,
                       capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "digits-mlp" in r.stderr  # the error lists the registered models


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow  # long (subprocesses, services): `make test-slow` runs it
@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium: `make test-slow` installs Debian's chromium as root")
def test_browser_shows_the_report_and_the_runs_in_the_mlflow_ui(repo, tmp_path):
    """As a person would look: headless Chromium opens reports/index.html and the MLflow UI on loopback."""
    from conftest import start_mlflow

    def chromium(url: str, *args: str) -> str:
        r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                            "--virtual-time-budget=30000", *args, url], capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout

    from PIL import Image

    def nonblank(png: Path) -> bool:
        lo, hi = Image.open(png).convert("L").getextrema()
        return png.stat().st_size > 10_000 and hi - lo > 100

    metrics = {p.stem: json.loads(p.read_text()) for p in (repo / "metrics").glob("*.json")}
    report = (repo / "reports/index.html").as_uri()
    dom = chromium(report, "--dump-dom")
    assert all(m["run_id"] in dom for m in metrics.values())
    chromium(report, f"--screenshot={tmp_path / 'report.png'}")
    assert nonblank(tmp_path / "report.png")

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    proc, url = start_mlflow("ui", ["--backend-store-uri", f"sqlite:///{repo / 'mlflow.db'}"])
    try:
        exp = client.get_experiment_by_name(metrics["digits_mlp"]["experiment"])
        assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
        # the experiment page on MLflow's Model-training view: the runs table, each run with its datasets
        runs_page = f"{url}/#/experiments/{exp.experiment_id}?workflowType=machine_learning"
        dom = chromium(runs_page, "--dump-dom")
        assert "Dataset" in dom
        runs = [client.get_run(m["run_id"]) for m in metrics.values() if m["experiment"] == exp.name]
        assert len(runs) == 2
        for run in runs:
            assert run.info.run_name in dom
            train = next(i.dataset for i in run.inputs.dataset_inputs
                         if any(t.key == "mlflow.data.context" and t.value == "train" for t in i.tags))
            assert f"{train.name} ({train.digest})" in re.sub(r"<[^>]+>", "", dom)  # Dataset column: name (digest)
        chromium(runs_page, f"--screenshot={tmp_path / 'ui.png'}")
        assert nonblank(tmp_path / "ui.png")
        # MLflow's compare view of the two runs: both runs' test accuracy (shown to 3 decimals)
        ids = json.dumps([r.info.run_id for r in runs], separators=(",", ":"))
        compare = f"{url}/#/compare-runs?runs={ids}&experiments=[\"{exp.experiment_id}\"]"
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", chromium(compare, "--dump-dom")))
        assert "Comparing 2 Runs" in text
        metrics_table = text[text.index("test/acc"):]
        for run in runs:
            assert run.info.run_name in text and f" {round(run.data.metrics['test/acc'], 3)} " in metrics_table
        chromium(compare, f"--screenshot={tmp_path / 'compare.png'}")
        assert nonblank(tmp_path / "compare.png")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_second_repro_is_a_noop(repo):
    r = sh(["dvc", "repro"], repo)
    assert "Data and pipelines are up to date" in r.stdout
    assert "Running stage" not in r.stdout


@pytest.mark.slow  # long (subprocesses, services): `make test-slow` runs it
def test_conf_edit_reruns_only_what_it_affects(repo):
    f = repo / "conf/model/cnn1d.yaml"  # a key that mnist1d_cnn1d's experiment file does not override
    assert "dropout: 0.1" in f.read_text()
    f.write_text(f.read_text().replace("dropout: 0.1", "dropout: 0.2"))
    r = sh(["dvc", "repro"], repo)
    assert "Running stage 'train@mnist1d_cnn1d'" in r.stdout
    assert "Running stage 'train@digits_mlp'" not in r.stdout
    assert "Running stage 'train_main'" not in r.stdout


@pytest.mark.slow  # long (subprocesses, services): `make test-slow` runs it
def test_dvc_exp_run_sets_an_override_of_main(repo):
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "cnn dropout 0.2", "--allow-empty"], repo)
    sh(["dvc", "exp", "run", "-S", "+overrides.main.model=mlp", "-n", "mlp-main"], repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["overrides"]["main"] == {"model": "mlp"}  # configure_main composes conf/ with it
    main = json.loads((repo / "metrics/main.json").read_text())
    assert main["model"] == "mlp"
    shown = json.loads(sh(["dvc", "exp", "show", "--json"], repo).stdout)
    text = json.dumps(shown)
    assert "mlp-main" in text and "test/acc" in text


def test_extra_suite_trains_every_extra_experiment_from_the_root():
    """extra/dvc.yaml (`make run-extra`): one configure and one train stage per pipeline.extra_experiments,
    run from the project root, with results in metrics-extra/ (which the report reads beside metrics/) and
    key figures in scores/extra/."""
    from dlzoo.report.leaderboard import EXTRA_DIR

    extra = yaml.safe_load((ROOT / "conf/config.yaml").read_text())["pipeline"]["extra_experiments"]
    listed = sh(["dvc", "stage", "list", "extra/dvc.yaml"], ROOT).stdout
    for name in extra:
        assert f"train_extra@{name}" in listed and f"configure_extra@{name}" in listed
    stages = yaml.safe_load((ROOT / "extra/dvc.yaml").read_text())["stages"]
    assert stages["train_extra"]["do"]["wdir"] == ".."
    assert f"{EXTRA_DIR}/${{item}}.json" in stages["train_extra"]["do"]["outs"]
    assert "scores/extra/${item}.json" in str(stages["train_extra"]["do"]["metrics"])
    pipeline = yaml.safe_load((ROOT / "conf/config.yaml").read_text())["pipeline"]
    assert not set(pipeline["experiments"]) & set(extra), "an experiment in both suites would have two stages writing its run"
    # the extra comparisons write beside the default ones' artifacts but to metrics-extra/, which the report reads
    assert pipeline["extra_comparisons"] and not set(pipeline["extra_comparisons"]) & set(pipeline["comparisons"])
    for name in pipeline["extra_comparisons"]:
        assert f"compare_extra@{name}" in listed and (ROOT / "conf" / "comparison" / f"{name}.yaml").exists()
    assert f"{EXTRA_DIR}/compare_${{item}}.json" in stages["compare_extra"]["do"]["outs"]
