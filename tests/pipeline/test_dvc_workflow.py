"""DVC's experiment workflow, on the real `dvc` in a temporary git copy of the project shrunk to two tiny
experiments: exp show / metrics diff, `-S` on a pipeline experiment, the queue (-j 2) into the project's MLflow
store, and a colleague's clone that pulls everything from a local remote without training."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from conftest import ROOT
from test_pipeline import git_project, sh

EXPERIMENTS = ["digits_mlp", "mnist1d_mlp"]
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def _env() -> dict:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONWARNINGS": "ignore",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """`sh` without the exit-status assertion (for commands expected to fail or to report a status)."""
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_env())


def _shrink(proj: Path) -> None:
    """The two experiments of EXPERIMENTS, 2 epochs each; the stages that need more runs removed; the
    `artifacts:` and learning-curve `plots:` of dvc.yaml cut to the runs there are."""
    cfg = yaml.safe_load((proj / "conf/config.yaml").read_text())
    cfg["pipeline"].update(experiments=EXPERIMENTS, compress={}, sample_quality={})
    (proj / "conf/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    dvc = yaml.safe_load((proj / "dvc.yaml").read_text())
    for stage in ("compare", "sample_quality", "compress", "configure_main", "train_main"):
        del dvc["stages"][stage]
    dvc["artifacts"] = {e: {"path": f"artifacts/runs/{e}", "type": "model"} for e in EXPERIMENTS}
    dvc["plots"] = [{"learning curves": {"template": "linear", "x": "epoch", "y": {
        f"artifacts/runs/{e}/history.csv": ["train/loss", "val/loss"] for e in EXPERIMENTS}}}]
    (proj / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    trainer = yaml.safe_load((proj / "conf/trainer/cpu.yaml").read_text())
    trainer.update(max_epochs=2, enable_progress_bar=False, enable_model_summary=False)
    (proj / "conf/trainer/cpu.yaml").write_text(yaml.safe_dump(trainer))
    for name in EXPERIMENTS:
        f = proj / "conf/experiment" / f"{name}.yaml"
        f.write_text(re.sub(r"max_epochs: \d+", "max_epochs: 2", f.read_text()))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """The shrunk project, trained once (`dvc repro`) and committed with its dvc.lock and scores/."""
    proj = git_project(tmp_path_factory.mktemp("dvcflow") / "proj", _shrink)
    sh(["dvc", "repro"], proj)
    sh([*GIT, "add", "-A"], proj)
    sh([*GIT, "commit", "-qm", "trained"], proj)
    return proj


def _client(repo: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")


def _runs(repo: Path) -> list:
    client = _client(repo)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def acc(name: str) -> str:
    """The `dvc exp show --csv` column of an experiment's test accuracy."""
    return f"scores/{name}.json:test/acc"


def _exp_show(repo: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(sh(["dvc", "exp", "show", "--csv"], repo).stdout)))


def test_scores_are_numbers_committed_and_shown_without_gaps(repo):
    """scores/ holds a handful of numbers per experiment, committed; exp show has them (no `!`) in few
    columns; metrics diff loads every file."""
    assert "scores" in sh(["git", "ls-files"], repo).stdout
    for e in EXPERIMENTS:
        figures = json.loads((repo / f"scores/{e}.json").read_text())
        full = json.loads((repo / f"metrics/{e}.json").read_text())  # the run's JSON: ids, names, every figure
        assert figures == {"test/acc": pytest.approx(full["test/acc"])} and isinstance(full["run_id"], str)
    text = sh(["dvc", "exp", "show", "--csv"], repo).stdout
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert len(header) <= 60 and "!" not in text
    baseline = dict(zip(header, rows[1]))  # workspace, then the commit
    for e in EXPERIMENTS:
        assert float(baseline[acc(e)]) == pytest.approx(json.loads((repo / f"scores/{e}.json").read_text())["test/acc"])
    r = _run(["dvc", "metrics", "diff", "HEAD", "--all", "--json"], repo)
    assert r.returncode == 0 and "failed" not in r.stderr.lower(), r.stderr
    assert set(json.loads(r.stdout)) == {f"scores/{e}.json" for e in EXPERIMENTS}


def test_second_repro_is_a_noop_and_plots_have_every_learning_curve(repo):
    r = sh(["dvc", "repro"], repo)
    assert "Running stage" not in r.stdout and "up to date" in r.stdout
    plots = json.loads(sh(["dvc", "plots", "show", "--json"], repo).stdout)["data"]
    points = [p for d in plots["learning curves"] for p in d["content"]["data"]["values"]]
    lines = {p["filename::field"] for p in points}  # the file names DVC shortens to what tells them apart
    assert lines == {f"{e}/history.csv::{k}" for e in EXPERIMENTS for k in ("train/loss", "val/loss")}
    assert len(points) == 2 * 2 * len(EXPERIMENTS)  # 2 epochs, train and val


def test_colleague_clone_pulls_models_and_report_without_training(repo, tmp_path):
    store = tmp_path / "dvc-store"
    sh(["dvc", "remote", "add", "-d", "shared", str(store)], repo)
    sh([*GIT, "commit", "-qam", "shared DVC remote"], repo)
    sh(["dvc", "push"], repo)
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    sh(["dvc", "pull"], clone)
    assert "up to date" in sh(["dvc", "status"], clone).stdout
    # Python writes bytecode caches next to the sources it imports (__pycache__/): they change no stage
    sh([sys.executable, "-m", "compileall", "-q", "src"], clone)
    assert list((clone / "src/dlzoo/tasks").glob("__pycache__/*.pyc"))
    assert "up to date" in sh(["dvc", "status"], clone).stdout
    for e in EXPERIMENTS:
        assert (clone / f"artifacts/runs/{e}/checkpoints/last.ckpt").exists()
    assert (clone / "reports/index.html").read_text() == (repo / "reports/index.html").read_text()
    r = sh(["dvc", "repro"], clone)
    assert "Running stage" not in r.stdout
    assert not (clone / "mlflow.db").exists()  # nothing was trained or evaluated there
    assert sh(["git", "status", "--porcelain"], clone).stdout == ""  # dvc.lock and scores/ unchanged
    # a registered version (a GTO git tag) of a model artifact of dvc.yaml, fetched from the remote by name
    sh([*GIT, "tag", "-a", "digits_mlp@v1.0.0", "-m", "Registering artifact digits_mlp version 1.0.0"], repo)
    sh(["dvc", "artifacts", "get", str(repo), "digits_mlp", "-o", str(tmp_path / "got")], tmp_path)
    assert (tmp_path / "got/checkpoints/last.ckpt").read_bytes() == (
        repo / "artifacts/runs/digits_mlp/checkpoints/last.ckpt").read_bytes()


def test_set_param_on_a_pipeline_experiment_reruns_only_its_stages(repo):
    before = json.loads((repo / "scores/digits_mlp.json").read_text())
    r = sh(["dvc", "exp", "run", "-n", "mlp-lr", "-S", "+overrides.digits_mlp.optimizer.lr=0.0002"], repo)
    ran = set(re.findall(r"Running stage '([^']+)'", r.stdout))
    assert ran == {"configure@digits_mlp", "train@digits_mlp", "report"}, r.stdout
    diff = sh(["dvc", "params", "diff", "--json"], repo).stdout
    assert json.loads(diff)["params.yaml"]["overrides.digits_mlp.optimizer.lr"]["new"] == 0.0002
    assert yaml.safe_load((repo / "artifacts/configs/digits_mlp.yaml").read_text())["optimizer"]["lr"] == 0.0002
    after = json.loads((repo / "scores/digits_mlp.json").read_text())
    assert after != before
    run = _client(repo).get_run(json.loads((repo / "metrics/digits_mlp.json").read_text())["run_id"])
    assert run.data.params["optimizer.lr"] == "0.0002" and run.data.tags["dvc.exp_name"] == "mlp-lr"
    assert run.data.tags["git.dirty"] == "true"  # params.yaml differs from the commit
    shown = {row["Experiment"]: row for row in _exp_show(repo)}
    assert float(shown["mlp-lr"][acc("digits_mlp")]) == pytest.approx(after["test/acc"])
    # committed, the old figures stay at the old commit
    sh([*GIT, "commit", "-qam", "digits_mlp lr 2e-4"], repo)
    d = json.loads(sh(["dvc", "metrics", "diff", "HEAD~1", "HEAD", "--json"], repo).stdout)
    assert d["scores/digits_mlp.json"]["test/acc"]["old"] == pytest.approx(before["test/acc"])
    sh(["git", "checkout", "-q", "HEAD~1"], repo)
    try:
        row = next(r for r in _exp_show(repo) if r["rev"] == "workspace")
        assert float(row[acc("digits_mlp")]) == pytest.approx(before["test/acc"])
    finally:
        sh(["git", "checkout", "-q", "main"], repo)


def _wait_for_queue(repo: Path, timeout_s: float = 600) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = sh(["dvc", "queue", "status"], repo).stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        time.sleep(3)
    pytest.fail(f"queued experiments still running after {timeout_s:.0f} s:\n{status}")


@pytest.mark.slow  # long (subprocesses, services): `make test-slow` runs it
def test_queued_experiments_land_in_the_projects_mlflow_store(repo):
    """Two experiments and a failing one, run two at a time in DVC's temporary workspaces: every run is in
    the project's store with its experiment's name; the failed one is FAILED and its log says why."""
    for name, sets in (("q-lr3", ["optimizer.lr=0.003"]), ("q-lr5", ["optimizer.lr=0.005"]),
                       ("q-nan", ["optimizer._option_=sgd", "optimizer.lr=1e30"])):
        sh(["dvc", "exp", "run", "--queue", "-n", name,
            *[a for s in sets for a in ("-S", f"+overrides.mnist1d_mlp.{s}")]], repo)
    try:
        # the workers outlive `dvc queue start` and hold its stdout: not captured, or reading it would wait for them
        start = subprocess.run(["dvc", "queue", "start", "-j", "2"], cwd=repo, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=_env(), timeout=120)
        assert start.returncode == 0
        status = _wait_for_queue(repo)
    finally:
        _run(["dvc", "queue", "stop"], repo)
    runs = {r.data.tags["dvc.exp_name"]: r for r in _runs(repo) if r.data.tags.get("dvc.exp_name", "").startswith("q-")}
    assert set(runs) == {"q-lr3", "q-lr5", "q-nan"}, status
    assert runs["q-lr3"].data.params["optimizer.lr"] == "0.003"
    assert runs["q-lr3"].info.status == runs["q-lr5"].info.status == "FINISHED"
    assert runs["q-nan"].info.status == "FAILED"
    assert re.search(r"train/loss is (nan|inf)", sh(["dvc", "queue", "logs", "q-nan"], repo).stdout)
    assert not list((repo / ".dvc/tmp").rglob("mlflow.db"))
    shown = {row["Experiment"]: row for row in _exp_show(repo)}
    figures = json.loads((repo / "metrics/mnist1d_mlp.json").read_text())
    for name in ("q-lr3", "q-lr5"):
        assert 0 < float(shown[name][acc("mnist1d_mlp")]) <= 1
        assert float(shown[name][acc("mnist1d_mlp")]) != pytest.approx(figures["test/acc"])


def test_git_dirty_ignores_what_dvc_rewrites(tmp_path, monkeypatch):
    """git.dirty is true when code or config differ from the commit, not when DVC rewrote its lock files or
    the committed scores while running."""
    from dlzoo.tracking.mlflow_utils import provenance_tags

    for rel in ("dvc.lock", "extra/dvc.lock", "scores/a.json", "conf/config.yaml", "dvc.yaml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("a\n")
    (tmp_path / "conf/config.yaml").write_text("a: 1\n")
    sh(["git", "init", "-q"], tmp_path)
    sh([*GIT, "add", "-A"], tmp_path)
    sh([*GIT, "commit", "-qm", "i"], tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DLZOO_ROOT", raising=False)
    for rel in ("dvc.lock", "extra/dvc.lock", "scores/a.json"):
        (tmp_path / rel).write_text("rewritten\n")
    assert provenance_tags([], tmp_path)["git.dirty"] == "false"
    (tmp_path / "conf/config.yaml").write_text("a: 2\n")
    assert provenance_tags([], tmp_path)["git.dirty"] == "true"


def test_store_is_the_dvc_repository_s_in_a_temporary_workspace(tmp_path, monkeypatch):
    from dlzoo.paths import store_root
    from dlzoo.tracking.mlflow_utils import tracking_uri

    (tmp_path / "conf").mkdir()
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    work = tmp_path / ".dvc/tmp/exps/tmpabc"
    shutil.copytree(tmp_path / "conf", work / "conf")
    shutil.copy(tmp_path / "dvc.yaml", work / "dvc.yaml")
    monkeypatch.delenv("DLZOO_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(work)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert store_root() == tmp_path.resolve() and str(tmp_path / "mlflow.db") in tracking_uri()
    monkeypatch.chdir(tmp_path)  # `dvc repro` in the repository itself: its own store
    assert store_root() == tmp_path.resolve()


def test_params_overrides_become_hydra_overrides(tmp_path, monkeypatch):
    from dlzoo.configure import main, params_file

    monkeypatch.chdir(ROOT)
    params = params_file()
    params["overrides"]["digits_mlp"] = {"optimizer": {"_option_": "sgd", "lr": 0.05}, "model": "logreg",
                                         "name": "it's mine", "data": {"batch_size": 32}, "scheduler": {}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setattr("dlzoo.configure.project_root", lambda: tmp_path)
    main(["--out", str(tmp_path / "c.yaml"), "--job", "--from-params", "digits_mlp", "experiment=digits_mlp"])
    cfg = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert cfg["optimizer"]["_target_"] == "torch.optim.SGD" and cfg["optimizer"]["lr"] == 0.05
    assert cfg["model"]["name"] == "logreg" and cfg["name"] == "it's mine" and cfg["data"]["batch_size"] == 32
    params["overrides"]["digits_mlp"] = {"optimizer": {"lrr": 0.1}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit, match=r"(?s)overrides\.digits_mlp.*optimizer\.lrr"):
        main(["--out", str(tmp_path / "d.yaml"), "--job", "--from-params", "digits_mlp", "experiment=digits_mlp"])


def test_dvc_yaml_names_every_experiment_as_model_and_learning_curve():
    """The default and extra pipelines' `artifacts:` (type: model) and learning-curve plots list exactly the
    experiments their stages train."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dvcfile, names, prefix in (("dvc.yaml", [*params["pipeline"]["experiments"], "main"], ""),
                                   ("extra/dvc.yaml", params["pipeline"]["extra_experiments"], "../")):
        spec = yaml.safe_load((ROOT / dvcfile).read_text())
        assert spec["artifacts"] == {n: {"path": f"{prefix}artifacts/runs/{n}", "type": "model"} for n in names}
        curves = [f for p in spec["plots"] for d in p.values() for f in d["y"]]
        assert sorted(curves) == sorted(f"{prefix}artifacts/runs/{n}/history.csv" for n in names), dvcfile


def test_scores_keep_a_handful_of_numbers():
    from dlzoo.scores import key_figures

    evaluated = {"name": "x", "run_id": "abc", "registered": "m/1", "test/acc": 0.9, "test/loss": 0.3, "epochs": 3,
                 "test/f1_macro": 0.88, "long/acc_len_9": 0.5}
    assert key_figures(evaluated) == {"test/acc": 0.9}
    compressed = {"source": {"test/acc": 0.9, "run_id": "a"}, "prune": {"test/acc": 0.8, "size/bytes": 10}}
    assert key_figures(compressed) == {"prune/test/acc": 0.8}
    compared = {"comparison": "opt", "title": "t", "variants": {"sgd": {"val/acc": 0.5, "val/loss": 1.0, "seconds": 3.0},
                                                                "ae": {"val/loss": 0.4, "val/kl": float("nan")}}}
    assert key_figures(compared) == {"sgd/val/acc": 0.5, "ae/val/loss": 0.4}
    gan = {"name": "ring_wgan", "task": "gan", "test/modes": 8.0, "test/hq": 0.9, "epochs": 5}
    assert key_figures(gan) == {"test/modes": 8.0, "test/hq": 0.9}
    assert key_figures({"name": "x", "test/loss": 0.5, "test/recon": 0.2}) == {"test/loss": 0.5}
