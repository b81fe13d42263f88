"""`make run-seeds`: the default matrix at more seeds (seeds/dvc.yaml), mean ± std (n) in the leaderboard."""

from __future__ import annotations

import json
import shutil
import statistics
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, copy_project, run_cli
from test_pipeline import COPY, sh as _sh


def _write(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row))


def test_leaderboard_shows_mean_std_n_where_there_are_seeds(tmp_path):
    from dlzoo.report.leaderboard import SPREAD, by_dataset, console_table, load_rows, markdown

    m = tmp_path / "metrics"
    _write(m / "a.json", {"name": "a", "dataset": "digits", "model": "mlp", "test/acc": 0.90})
    _write(m / "b.json", {"name": "b", "dataset": "digits", "model": "lenet5", "test/acc": 0.93})
    _write(m / "r.json", {"name": "r", "dataset": "diabetes", "model": "linear", "test/r2": 0.40})
    _write(tmp_path / "metrics-seeds/a/s1.json", {"name": "a", "test/acc": 0.96})
    _write(tmp_path / "metrics-seeds/a/s2.json", {"name": "a", "test/acc": 0.99})
    rows = {r["name"]: r for r in load_rows(m)}
    assert rows["a"]["seeds"] == 3
    assert rows["a"]["test/acc/mean"] == pytest.approx(statistics.fmean([0.90, 0.96, 0.99]))
    assert rows["a"]["test/acc/std"] == pytest.approx(statistics.stdev([0.90, 0.96, 0.99]))
    assert "seeds" not in rows["b"] and "seeds" not in rows["r"]  # one seed: no spread
    groups = by_dataset(list(rows.values()))
    assert [r["name"] for r in groups["digits"]] == ["a", "b"]  # ranked by the mean (0.95 > 0.93), not 0.90
    text = markdown(groups)
    assert SPREAD in text.split("### digits")[1] and SPREAD not in text.split("### diabetes")[1].split("###")[0]
    assert "| 0.9000 | 0.9500 ± 0.0458 (3) |" in text
    assert "0.9500 ± 0.0458 (3)" in console_table(groups)


@pytest.fixture
def tiny_repo(tmp_path) -> Path:
    """A git + DVC copy of the project: digits_mlp only, 1 epoch, seeds 1 and 2."""
    proj = tmp_path / "repo"
    copy_project(proj, [*COPY, "seeds"])
    shutil.copytree(ROOT / "data", proj / "data")
    cfg = yaml.safe_load((proj / "conf/config.yaml").read_text())
    cfg["pipeline"].update(experiments=["digits_mlp"], seeds=[1, 2], compress={})
    (proj / "conf/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    trainer = yaml.safe_load((proj / "conf/trainer/cpu.yaml").read_text())
    trainer.update(max_epochs=1, enable_progress_bar=False, enable_model_summary=False)
    (proj / "conf/trainer/cpu.yaml").write_text(yaml.safe_dump(trainer))
    _sh([sys.executable, "-m", "dlzoo.configure", "--out", "params.yaml", "--params"], proj)
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        _sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", *cmd], proj)
    _sh([sys.executable, "-m", "dlzoo.data.check"], proj)
    return proj


@pytest.mark.slow  # long (subprocesses, services): `make test-slow` runs it
def test_run_seeds_trains_each_experiment_at_the_other_seeds_and_the_report_shows_the_spread(tiny_repo):
    listed = _sh(["dvc", "stage", "list", "seeds/dvc.yaml"], tiny_repo).stdout
    assert "train_seed@digits_mlp-1" in listed and "train_seed@digits_mlp-2" in listed
    # what `make run-seeds` runs: the experiment's own seed (train@, here alone), then the seeds file, the report
    _sh(["dvc", "repro", "train@digits_mlp"], tiny_repo)
    _sh(["dvc", "repro", "seeds/dvc.yaml"], tiny_repo)
    own = json.loads((tiny_repo / "metrics/digits_mlp.json").read_text())
    seeded = [json.loads((tiny_repo / f"metrics-seeds/digits_mlp/s{s}.json").read_text()) for s in (1, 2)]
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tiny_repo / 'mlflow.db'}")
    seeds = [client.get_run(m["run_id"]).data.params["seed"] for m in (own, *seeded)]
    assert seeds == ["42", "1", "2"]  # the same configuration, only the seed changed
    params = [client.get_run(m["run_id"]).data.params for m in (own, *seeded)]
    assert params[1]["optimizer.lr"] == params[0]["optimizer.lr"] and params[1]["trainer.max_epochs"] == "1"
    _sh([sys.executable, "-m", "dlzoo.report", "--metrics-dir", "metrics", "--out", "reports"], tiny_repo)
    board = json.loads((tiny_repo / "reports/leaderboard.json").read_text())["digits"][0]
    accs = [own["test/acc"], *(m["test/acc"] for m in seeded)]
    assert board["seeds"] == 3 and board["test/acc/mean"] == pytest.approx(statistics.fmean(accs))
    report = (tiny_repo / "reports/README.md").read_text()
    assert f"{statistics.fmean(accs):.4f} ± {statistics.stdev(accs):.4f} (3)" in report
    # the machine the runs came from, from their env.* tags
    from dlzoo.tracking.environment import cpu_isa

    assert "Trained on: " in report and f"({cpu_isa()}), 2 threads, torch " in report


SEED_BARS = ROOT / "benchmarks/seed_bars.py"


@pytest.mark.slow  # long (subprocesses, services): `make test-slow` runs it
def test_seed_bars_trains_every_seed_and_thread_count_and_fails_a_missed_bar(project, tmp_path):
    out = tmp_path / "bars.json"
    # a bar no 1-epoch run reaches: the table is written, the command fails and names the experiment
    r = run_cli([str(SEED_BARS), "--experiments", "digits_mlp", "--seeds", "42", "1", "--threads", "1", "2",
                 "--bar", "digits_mlp=test/acc:1.01", "--override", "trainer.max_epochs=1", "--out", str(out)],
                project, timeout=900)
    assert r.returncode == 1 and "below the bar" in r.stderr and "digits_mlp" in r.stderr, r.stderr[-3000:]
    table = json.loads(out.read_text())
    runs = table["runs"]
    assert sorted((x["seed"], x["threads"]) for x in runs) == [(1, 1), (1, 2), (42, 1), (42, 2)]
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    for x in runs:  # each run really trained at its seed and thread count, through the train command
        run = client.get_run(x["run_id"])
        assert run.data.params["seed"] == str(x["seed"]) and run.data.tags["env.torch_threads"] == str(x["threads"])
        assert run.data.metrics["test/acc"] == pytest.approx(x["test"]["test/acc"])
    s = table["summary"]["digits_mlp"]
    accs = [x["test"]["test/acc"] for x in runs]
    assert s["n"] == 4 and s["min"] == min(accs) and s["mean"] == pytest.approx(statistics.fmean(accs))
    assert s["pass"] is False and s["below_bar"] == 4 and s["bar"] == 1.01
    assert table["environment"]["env.cpu_isa"]


def test_seed_bars_refuses_an_experiment_without_a_bar(project):
    r = run_cli([str(SEED_BARS), "--experiments", "digits_mlp"], project)
    assert r.returncode == 2 and "no bar for digits_mlp" in r.stderr and "--bar NAME=METRIC:VALUE" in r.stderr


BARRED = ["digits_lenet5", "digits_alexnet", "digits_vgg16", "digits_googlenet", "digits_resnet18", "digits_plain18",
          "digits_resnet50", "digits_densenet", "digits_mobilenet_v1", "mnist1d_cnn1d", "mnist1d_gru", "ring_wgan"]


@pytest.mark.slow
@pytest.mark.parametrize("experiment", BARRED)
def test_recipe_holds_across_seeds_and_thread_counts(project, tmp_path, experiment):
    """Every barred default experiment reaches its bar at its own seed and two others, with 1 and 2 threads
    (digits CNNs 0.97 -- the plain-18 control 0.96 --, MNIST-1D CNN 0.985, GRU 0.91 test accuracy; the ring WGAN
    7 of 8 modes; benchmarks/seed_bars.py says why)."""
    out = tmp_path / "bars.json"
    r = run_cli([str(SEED_BARS), "--experiments", experiment, "--out", str(out)], project, timeout=6 * 3600)
    print(r.stdout)
    summary = json.loads(out.read_text())["summary"][experiment]
    assert summary["n"] == 6
    assert r.returncode == 0 and summary["pass"], f"{experiment}: {summary}"


@pytest.mark.slow  # one training in a subprocess
def test_seed_bars_keeps_the_finished_runs_when_a_later_one_fails(project, tmp_path):
    out = tmp_path / "bars.json"
    # the second experiment does not exist: its run fails after the first one finished
    r = run_cli([str(SEED_BARS), "--experiments", "digits_mlp", "no_such_experiment", "--seeds", "42", "--threads", "1",
                 "--bar", "digits_mlp=test/acc:0", "--bar", "no_such_experiment=test/acc:0",
                 "--override", "trainer.max_epochs=1", "--out", str(out)], project, timeout=900)
    assert r.returncode != 0 and "no_such_experiment" in r.stderr
    table = json.loads(out.read_text())
    assert table["partial"] is True and [x["experiment"] for x in table["runs"]] == ["digits_mlp"]
    assert table["summary"]["digits_mlp"]["n"] == 1 and table["summary"]["digits_mlp"]["pass"] is True
