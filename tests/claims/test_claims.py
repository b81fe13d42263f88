"""The lecture-claims suite (dlzoo.claims): claim files, statistics, verdicts, a real claim run, the report."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import FAST, compose, run_cli

from dlzoo.claims import expr
from dlzoo.claims.verdict import (FAILS, HOLDS, INCONCLUSIVE, PARTLY, check_verdict, claim_verdict, judge_values,
                                  n_needed, summarize)
from dlzoo.errors import ConfigError


def test_statistics_evaluate_figures_curves_and_functions():
    a = expr.Figures({"val/acc": 0.9, "epochs": 3, "curves": {"train/loss": [2.0, 1.0, 0.5]}})
    b = expr.Figures({"val/acc": 0.6, "epochs": 5, "curves": {"train/loss": [2.0, 1.5, 1.4]}})
    names = {"a": a, "b": b, "res": {"x": {"ratio": 3.9}}}
    assert expr.evaluate("a['val/acc'] - b['val/acc']", names) == pytest.approx(0.3)
    assert expr.evaluate("mean(b.curves['train/loss']) / mean(a.curves['train/loss'])", names) == pytest.approx(4.9 / 3.5)
    assert expr.evaluate("last(a.curves['train/loss']) / first(a.curves['train/loss'])", names) == 0.25
    assert expr.evaluate("argmin(b.curves['train/loss']) + b.epochs - a.epochs", names) == 4.0
    assert expr.evaluate("log10(res['x']['ratio'] * 10) > 1", names) == 1.0
    assert expr.evaluate("ifnan(a['val/acc'] * nan_, 0.1)", {**names, "nan_": math.nan}) == 0.1


@pytest.mark.parametrize("text, message", [
    ("__import__('os')", "unknown function '__import__'"),
    ("__import__('os').system('true')", "is not allowed"),
    ("a.__class__", "no .__class__"),
    ("c['val/acc']", "unknown name 'c'; names: a"),
    ("a['test/acc']", "no ['test/acc'] in a"),
    ("[x for x in a]", "is not allowed"),
    ("a['val/acc'] +", "is not an expression"),
    ("a.curves", "not a number"),
])
def test_statistics_refuse_what_is_not_arithmetic_on_figures(text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        expr.evaluate(text, {"a": expr.Figures({"val/acc": 0.5, "curves": {}})})


def test_verdicts_over_seeds_and_checks():
    assert check_verdict([0.5, math.nan, 0.6], ">= 0.5") == INCONCLUSIVE  # a diverged seed: no interval
    assert check_verdict([3.6], ">= 3.5", seeded=False) == HOLDS  # a deterministic pipeline result, compared directly
    assert check_verdict([1e-3], "< 1e-2", seeded=False) == HOLDS and check_verdict([0.2], "> 0.5", seeded=False) == FAILS
    assert check_verdict([0.9], "> 0") == INCONCLUSIVE  # one seed: no spread, no interval
    assert claim_verdict([HOLDS, HOLDS]) == HOLDS and claim_verdict([FAILS, FAILS]) == FAILS
    assert claim_verdict([HOLDS, FAILS]) == PARTLY and claim_verdict([HOLDS, INCONCLUSIVE]) == INCONCLUSIVE
    assert claim_verdict([HOLDS, FAILS, INCONCLUSIVE]) == PARTLY
    s = summarize([1.0, 2.0, 3.0])
    assert (s["mean"], s["std"], s["min"], s["max"], s["n"]) == (2.0, 1.0, 1.0, 3.0, 3)
    with pytest.raises(ConfigError, match="write an operator and a number"):
        check_verdict([1.0], "bigger than 0")


# t_{0.975, n-1} from tables: n=3 -> 4.302653, n=4 -> 3.182446, n=5 -> 2.776445
def test_a_check_is_judged_by_its_95_percent_paired_t_interval():
    r = judge_values([1.0, 2.0, 3.0], "> 0")  # every seed > 0, yet the interval 2 ± 4.3027/√3 reaches below 0
    assert r["method"] == "95% paired t" and r["n"] == 3 and r["mean"] == 2.0
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((2 - 4.302653 / 3 ** 0.5, 2 + 4.302653 / 3 ** 0.5), abs=1e-5)
    assert r["verdict"] == INCONCLUSIVE  # the old "every seed meets it" rule said holds
    assert r["n_needed"] == 4  # 4.3027/√3 = 2.48 > 2 = |mean - 0|, 3.1824/√4 = 1.59 < 2
    five = [1.0, 1.2, 0.8, 1.1, 0.9]  # mean 1, s = √0.025; half width 2.776445 · s / √5 = 0.19635
    r = judge_values(five, "> 0.5")
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((1 - 0.19635, 1 + 0.19635), abs=1e-4) and r["verdict"] == HOLDS
    assert check_verdict(five, "< 0.5") == FAILS and check_verdict(five, ">= 1.1") == INCONCLUSIVE
    assert judge_values(five, ">= 1.1")["n_needed"] == 13  # t_11·s/√12 = 0.1005, t_12·s/√13 = 0.0955 < 0.1
    # one seed misses, but the interval clears the threshold: the old rule said unclear
    spread = [0.4, 0.5, 0.45, 0.55, -0.02, 0.5, 0.48, 0.52, 0.47, 0.5]
    assert check_verdict(spread, "> 0") == HOLDS
    assert check_verdict([-0.3, -0.2, -0.25], "> 0") == FAILS  # wholly on the other side
    same = judge_values([7.0, 7.0, 7.0], ">= 7")  # no spread at all: the interval is the value
    assert (same["ci_low"], same["ci_high"], same["verdict"]) == (7.0, 7.0, HOLDS)
    assert n_needed(0.1, 0.0) is None  # a mean on the threshold: no n decides


def test_verdicts_of_two_thread_counts_combine_and_disagreement_is_inconclusive(tmp_path):
    def result(name, verdicts, threads):
        checks = [{"label": f"c{i}", "expect": "> 0", "verdict": v, "mean": 1.0, "ci_low": 0.5, "ci_high": 1.5, "n": 3,
                   "n_needed": 2, "method": "95% paired t"} for i, v in enumerate(verdicts)]
        return {"claim": name, "checks": checks, "verdict": claim_verdict(verdicts), "threads": threads, "wall_s": 60}

    for folder, threads, stable, flips in (("t1", 1, [HOLDS, FAILS], [HOLDS]), ("t2", 2, [HOLDS, FAILS], [FAILS])):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "stable.json").write_text(json.dumps(result("stable", stable, threads)))
        (tmp_path / folder / "flips.json").write_text(json.dumps(result("flips", flips, threads)))
    (tmp_path / "t1" / "only_here.json").write_text(json.dumps(result("only_here", [HOLDS], 1)))
    r = run_cli(["-m", "dlzoo.claims", "--combine", str(tmp_path / "t1"), str(tmp_path / "t2"),
                 "--out-dir", str(tmp_path / "both")], tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    stable = json.loads((tmp_path / "both" / "stable.json").read_text())
    flips = json.loads((tmp_path / "both" / "flips.json").read_text())
    assert stable["verdict"] == PARTLY and stable["verdicts_by_run"] == {"1 threads": PARTLY, "2 threads": PARTLY}
    assert flips["verdict"] == INCONCLUSIVE and flips["checks"][0]["verdict"] == INCONCLUSIVE
    assert flips["checks"][0]["by_run"]["2 threads"]["verdict"] == FAILS
    assert not (tmp_path / "both" / "only_here.json").exists() and "only_here" in r.stdout
    assert "flips" in r.stdout and "inconclusive" in r.stdout


def test_every_claim_file_loads_and_every_run_composes_and_validates():
    """Registry-driven: each claim of conf/claims/ and each of its variants (as `dlzoo.claims` composes them)."""
    from omegaconf import OmegaConf

    from dlzoo.claims.runner import EXPERIMENT
    from dlzoo.claims.spec import claim_names, load_claim
    from dlzoo.compare import base_overrides
    from dlzoo.config import validate
    from dlzoo.paths import project_root

    names = claim_names()
    params = OmegaConf.load(project_root() / "params.yaml").pipeline
    assert sorted([*params.claims, *params.claims_slow, *params.claims_on_results]) == names  # each in the suite, once
    assert sorted(load_claim(n)["number"] for n in names) == list(range(1, len(names) + 1))
    for name in names:
        spec = load_claim(name)
        for variant in spec["variants"].values():
            cfg = compose([*base_overrides(spec), f"logger.experiment_name={EXPERIMENT}", *variant["overrides"], "seed=0"])
            validate(cfg)
        assert bool(spec["variants"]) != (name in params.claims_on_results)
        if spec["variants"]:  # a training claim: enough seeds for an interval, each seed training every variant
            assert len(set(spec["seeds"])) >= 3, name


@pytest.mark.parametrize("body, message", [
    ("claim: x\nchecks: [{statistic: '1', expect: '> 0'}]\nvariants: {a: [seed=1]}\n", "`seeds`"),
    ("claim: x\nchecks: [{statistic: '1', expect: 'more'}]\n", "write an operator"),
    ("claim: x\nchecks: [{statistic: '1', expect: '> 0'}]\nsede: [1]\n", "unknown keys \\['sede'\\]"),
    ("claim: x\nseeds: [0]\nchecks: [{statistic: '1', expect: '> 0'}]\nvariants: {a-b: [seed=1]}\n", "identifier"),
    ("claim: x\nchecks: [{statistic: '1', expect: '> 0'}]\nmeasure: [flatness]\n", "choose from sharpness"),
])
def test_a_bad_claim_file_is_refused_before_training(tmp_path, body, message):
    from dlzoo.claims.spec import load_claim

    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        load_claim(str(path))


def test_an_unknown_claim_lists_the_valid_ones(root):
    r = run_cli(["-m", "dlzoo.claims", "vanishing_gradient"], root, timeout=60)
    assert r.returncode != 0 and "unknown; choose one of" in r.stderr and "vanishing_gradients" in r.stderr


def test_top_hessian_eigenvalue_matches_the_exact_one():
    """Power iteration on Hessian-vector products vs eigvalsh of the exact Hessian of a least-squares loss."""
    from dlzoo.claims.measures import top_hessian_eigenvalue

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 5, generator=g), torch.randn(64, generator=g)
    w = torch.zeros(5, requires_grad=True)
    batches = [(x[:32], y[:32]), (x[32:], y[32:])]
    eig = top_hessian_eigenvalue(lambda b: ((b[0] @ w - b[1]) ** 2).mean(), [w], batches, iters=100, tol=1e-8)
    exact = torch.linalg.eigvalsh(2 * x.T @ x / 64).max()  # H = 2 XᵀX / n, the mean of the two batches' Hessians
    assert eig == pytest.approx(float(exact), rel=1e-4)


TINY = """number: 1
title: tiny
claim: ReLU trains a deep MLP that sigmoid cannot.
base: [experiment=digits_mlp, "model.hidden=[32,32,32,32,32,32]", model.dropout=0.0, optimizer=sgd,
       trainer.max_epochs=2, callbacks.early_stopping=null, "+callbacks.grad_norms._target_=dlzoo.training.probes.GradientNorms",
       "+callbacks.update_norms._target_=dlzoo.training.probes.UpdateNorms"]
seeds: [0, 1]
curves: [grad/first_over_last, update/norm, update/effective_lr]
measure: [sharpness]
variants:
  sigmoid: [model.activation=sigmoid, model.init=xavier]
  relu: [model.activation=relu, model.init=kaiming]
  exploding: [optimizer.lr=1.0e+12]
checks:
  - label: gradient ratio
    statistic: log10(first(relu.curves['grad/first_over_last']) / first(sigmoid.curves['grad/first_over_last']))
    expect: "> 1"
  - label: diverged run counted at chance
    statistic: relu['val/acc'] - ifnan(exploding['val/acc'], 0.1)
    expect: "> 0"
plot: {curve: train/loss}
"""


@pytest.fixture(scope="module")
def tiny_claim(tmp_path_factory, splits_dir):
    """A claim run for real, once for this module: 3 variants x 2 seeds, 2 epochs each, in its own project."""
    import os
    import shutil

    from conftest import ROOT

    proj = tmp_path_factory.mktemp("claimproj")
    shutil.copytree(ROOT / "conf", proj / "conf")
    shutil.copy(ROOT / "dvc.yaml", proj / "dvc.yaml")
    (proj / "artifacts").mkdir()
    os.symlink(splits_dir, proj / "artifacts" / "splits")
    (proj / "conf" / "claims" / "tiny.yaml").write_text(TINY)
    r = run_cli(["-m", "dlzoo.claims", "tiny", *[x for f in FAST for x in ("-o", f)]], proj, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return proj, json.loads((proj / "metrics-claims" / "tiny.json").read_text()), r.stdout


def test_a_claim_trains_its_variants_under_one_parent_and_judges_them(tiny_claim):
    import mlflow

    proj, result, stdout = tiny_claim
    v = result["variants"]
    assert set(v) == {"sigmoid", "relu", "exploding"} and all(set(x) == {"0", "1"} for x in v.values())
    ratios = []
    for seed in ("0", "1"):  # paired: each seed trained every variant
        relu, sigmoid, boom = v["relu"][seed], v["sigmoid"][seed], v["exploding"][seed]
        # the statistic is recomputed here from the recorded figures (the probes' epoch means, in history.csv too)
        ratios.append(math.log10(relu["curves"]["grad/first_over_last"][0] / sigmoid["curves"]["grad/first_over_last"][0]))
        assert result["checks"][0]["values"][seed] == pytest.approx(ratios[-1]) and ratios[-1] > 1
        assert result["checks"][1]["values"][seed] == pytest.approx(relu["val/acc"] - 0.1)
        assert boom["diverged"] == 1.0 and "train/loss is" in boom["error"] and relu["diverged"] == 0.0
        assert len(relu["curves"]["update/norm"]) == 2 and relu["sharpness"] > 0 and sigmoid["sharpness"] > 0
        assert relu["curves"]["update/effective_lr"] == pytest.approx([0.05, 0.05], rel=1e-3)  # SGD: ‖Δθ‖ = lr·‖g‖
    c0 = result["checks"][0]  # the interval over the two seeds: mean ± t_{0.975,1} · s / √2, t = 12.7062
    half = 12.7062 * abs(ratios[0] - ratios[1]) / 2
    assert (c0["mean"], c0["n"], c0["method"]) == (pytest.approx(sum(ratios) / 2), 2, "95% paired t")
    assert (c0["ci_low"], c0["ci_high"]) == pytest.approx((c0["mean"] - half, c0["mean"] + half), rel=1e-4)
    assert c0["verdict"] == (HOLDS if c0["ci_low"] > 1 else INCONCLUSIVE)
    assert result["verdict"] == claim_verdict([c["verdict"] for c in result["checks"]]) and result["threads"] >= 1
    header = (proj / "artifacts" / "claims" / "tiny" / "relu_s0" / "history.csv").read_text().splitlines()[0]
    assert "grad/first_over_last" in header and "grad/l6" in header and "update/norm" in header
    assert f"claim tiny: {result['verdict'].upper()} (" in stdout and result["wall_s"] > 0  # wall time printed too
    assert "(95% paired t, n=2)" in stdout
    client = mlflow.MlflowClient(f"sqlite:///{proj / 'mlflow.db'}")
    parent = client.get_run(result["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["dlzoo.verdict"] == result["verdict"]
    assert parent.data.metrics["check0/mean"] == pytest.approx(c0["mean"])
    assert parent.data.metrics["check0/ci_low"] == pytest.approx(c0["ci_low"]) and parent.data.metrics["check0/n"] == 2
    assert parent.data.metrics["claim/wall_s"] == pytest.approx(result["wall_s"])
    exp = client.get_experiment_by_name("claims")
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    status = {c.data.tags["dlzoo.variant"]: c.info.status for c in children}
    assert status == {f"{v}_s{s}": "FAILED" if v == "exploding" else "FINISHED"
                      for v in ("sigmoid", "relu", "exploding") for s in (0, 1)}


def test_recheck_rejudges_recorded_runs_without_training(tiny_claim):
    import mlflow

    proj, result, _ = tiny_claim
    spec = proj / "conf" / "claims" / "tiny.yaml"
    # intervals far from both new thresholds: check 0 (log10 ratio ~1-5) now fails, check 1 (an accuracy) holds
    spec.write_text(TINY.replace('expect: "> 1"', 'expect: "> 100"').replace('expect: "> 0"', 'expect: "> -100"'))
    try:
        r = run_cli(["-m", "dlzoo.claims", "tiny", "--recheck"], proj, timeout=120)
    finally:
        spec.write_text(TINY)
    assert r.returncode == 0, r.stderr[-2000:]
    again = json.loads((proj / "metrics-claims" / "tiny.json").read_text())
    assert again["checks"][0]["values"] == result["checks"][0]["values"]  # same runs, no new training
    assert again["checks"][0]["ci_high"] == pytest.approx(result["checks"][0]["ci_high"])
    assert [c["verdict"] for c in again["checks"]] == [FAILS, HOLDS] and again["verdict"] == PARTLY
    assert again["wall_s"] == result["wall_s"]  # the recorded runs' time, kept
    parent = mlflow.MlflowClient(f"sqlite:///{proj / 'mlflow.db'}").get_run(result["parent_run_id"])
    assert parent.data.tags["dlzoo.verdict"] == PARTLY


def test_the_report_shows_each_verdict_with_its_interval(tiny_claim, tmp_path):
    from dlzoo.report.leaderboard import by_dataset
    from dlzoo.report.sections.claims import MARK, section

    _, result, _ = tiny_claim
    text = section([result], tmp_path)
    assert f"| 1 | ReLU trains a deep MLP that sigmoid cannot. | {MARK[result['verdict']]} |" in text
    detail = (tmp_path / "claims.md").read_text()
    assert "gradient ratio" in detail and f"`{result['parent_run_id']}`" in detail and "| exploding |" in detail
    c0 = result["checks"][0]
    assert f"| {c0['mean']:.4g} [{c0['ci_low']:.4g}, {c0['ci_high']:.4g}] (2) |" in detail  # the interval, n
    assert f"{c0['values']['0']:.4g}" in detail and (tmp_path / "claims" / "tiny.png").exists()
    bars = tmp_path / "claims" / "tiny-intervals.png"
    assert bars.stat().st_size > 5000 and "![tiny: intervals](claims/tiny-intervals.png)" in detail
    assert 'src="claims/tiny.png"' in (tmp_path / "claims.html").read_text()
    assert by_dataset([result]) == {}  # verdicts are not leaderboard rows


def test_claims_pipeline_has_a_stage_per_claim(root):
    r = run_cli(["-m", "dvc", "stage", "list", "-R", "claims"], root, timeout=120)
    assert r.returncode == 0, r.stderr
    from omegaconf import OmegaConf

    params = OmegaConf.load(root / "params.yaml").pipeline
    stages = {line.split()[0] for line in r.stdout.splitlines() if line.strip()}
    assert stages == {*(f"claims/dvc.yaml:claims@{n}" for n in params.claims),
                      *(f"claims/dvc.yaml:claims_slow@{n}" for n in params.claims_slow),
                      *(f"claims/dvc.yaml:claims_on_results@{n}" for n in params.claims_on_results)}


def test_a_claim_on_missing_pipeline_results_names_the_file_and_the_command(tmp_path):
    from dlzoo.claims.runner import load_inputs
    from dlzoo.errors import DataError

    with pytest.raises(DataError, match=r"metrics/compress/digits_lenet5.json is missing.*dvc repro compress@digits_lenet5"):
        load_inputs({"name": "compression", "inputs": {"lenet5": "metrics/compress/digits_lenet5.json"}}, tmp_path)


def test_weight_measures_tell_sparse_from_small_weights():
    from dlzoo.claims.measures import weights

    net = torch.nn.Sequential(torch.nn.Linear(4, 50), torch.nn.Linear(50, 2))
    with torch.no_grad():
        net[0].weight.fill_(0.5)
        net[0].weight[:, :2] = 1e-4  # half the first layer's weights near zero: 100 of 300
        net[1].weight.fill_(-2.0)
        net[0].bias.fill_(0.0)  # biases are not counted
    w = weights(net, None)
    assert w["sparsity"] == pytest.approx(100 / 300)
    assert w["norm"] == pytest.approx(math.sqrt(100 * 0.5 ** 2 + 100 * 1e-8 + 100 * 4.0))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.1)  # uniformly smaller: the same sparsity (relative to each layer's largest), a tenth the norm
    small = weights(net, None)
    assert small["sparsity"] == pytest.approx(w["sparsity"]) and small["norm"] == pytest.approx(w["norm"] / 10)


def test_dropout_scaling_measures_inverted_dropout_and_needs_a_dropout_layer():
    from types import SimpleNamespace

    from dlzoo.claims.measures import dropout_scaling

    x = torch.rand(512, 1, 8, 8) + 0.5
    dm = SimpleNamespace(datasets={"val": torch.utils.data.TensorDataset(x, torch.zeros(512))})
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                              torch.nn.Linear(256, 10))
    torch.nn.init.uniform_(net[1].weight, 0.0, 0.1)  # positive activations: a mean far from 0
    r = dropout_scaling(net, dm)
    assert r["p"] == 0.3 and r["zeroed"] == pytest.approx(0.3, abs=0.01)  # 131k units: sampling error ~0.001
    assert r["train_over_eval"] == pytest.approx(1.0, abs=0.02)  # not 0.7: the kept units are scaled by 1/0.7
    assert not net[3].training  # left in eval mode
    with pytest.raises(ValueError, match="no dropout layer"):
        dropout_scaling(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), dm)


def test_train_samples_is_a_seeded_subset_of_the_training_split(splits_dir):
    from dlzoo.data.datamodule import ArrayDataModule

    def train_x(n, seed):
        dm = ArrayDataModule("digits", splits_dir, seed=seed, standardize=False, train_samples=n)
        dm.setup()
        return dm.datasets["train"].tensors[0], len(dm.datasets["val"])

    full, n_val = train_x(None, 0)
    a, a_val = train_x(150, 0)
    assert len(a) == 150 and a_val == n_val  # validation stays whole
    assert torch.equal(a, train_x(150, 0)[0]) and not torch.equal(a, train_x(150, 1)[0])  # the seed picks them
    assert all(any(torch.equal(row, f) for f in full) for row in a[:5])  # drawn from the training split
    with pytest.raises(ConfigError, match=rf"data.train_samples=5000 is larger than the {len(full)} training samples"):
        train_x(5000, 0)


def test_threads_option_sets_torch_threads_and_the_runs_thread_key_where_there_is_one(root):
    from omegaconf import OmegaConf

    from dlzoo.claims.runner import thread_overrides

    before = torch.get_num_threads()
    try:
        assert thread_overrides(OmegaConf.create({"seed": 0}), None) == [] and torch.get_num_threads() == before
        assert thread_overrides(OmegaConf.create({"seed": 0}), 2) == [] and torch.get_num_threads() == 2
        assert thread_overrides(OmegaConf.create({"runtime": {"threads": None}}), 1) == ["runtime.threads=1"]
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    r = run_cli(["-m", "dlzoo.claims", "warmup", "--threads", "0"], root, timeout=60)
    assert r.returncode != 0 and "--threads 0: give an integer >= 1" in r.stderr


def test_wall_time_estimate_scales_recorded_run_times_to_the_current_seeds():
    from dlzoo.claims.cli import estimate_minutes

    spec = {"variants": {"a": {}, "b": {}}, "seeds": [0, 1, 2, 3, 4]}
    recorded = {"variants": {"a": {"0": {"seconds": 30.0}, "1": {"seconds": 42.0}}, "b": {"0": {"seconds": 12.0}}}}
    assert estimate_minutes(spec, recorded) == pytest.approx((36.0 + 12.0) * 5 / 60)
    assert estimate_minutes({"variants": {"a": {}, "new": {}}, "seeds": [0]}, recorded) is None  # never run
    assert estimate_minutes(spec, None) is None and estimate_minutes({"variants": {}}, None) == 0.0
