"""The benchmark commands run on a tiny setting and record what they measured (the figures themselves are
in benchmarks/results/, taken by `make bench`; tests do not time anything)."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT, run_cli


@pytest.mark.slow  # long (subprocesses, services): `make test-slow` runs it
def test_throughput_benchmark_compares_raw_loop_and_pipeline(project, tmp_path):
    out = tmp_path / "t.json"
    r = run_cli([str(ROOT / "benchmarks/throughput.py"), "--models", "lenet5", "--epochs", "2", "--repeats", "1",
                 "--steps-per-execution", "4", "--out", str(out)], cwd=project, timeout=600)  # prepared splits
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())["results"]["lenet5"]
    assert "train.steps_per_execution=4" in res["overrides"]  # the pipeline arm's
    raw, ours, ratio = res["raw_samples_per_s"]["median"], res["dlzoo_samples_per_s"]["median"], res["ratio"]["median"]
    assert raw > 0 and ours > 0 and abs(ratio - ours / raw) < 1e-9
    floor = res["lightning_samples_per_s"]["median"]  # the bare-Trainer reference arm
    assert floor > 0 and abs(res["lightning_ratio"]["median"] - floor / raw) < 1e-9


@pytest.mark.slow  # two trainings in subprocesses: `make test-slow` runs it
def test_speedups_benchmark_compares_each_variant_with_eager(project, tmp_path):
    out = tmp_path / "sp.json"
    r = run_cli([str(ROOT / "benchmarks/speedups.py"), "--experiments", "digits_mlp", "--variants", "bf16",
                 "--epochs", "2", "--out", str(out)], cwd=project, timeout=600)  # a project with prepared splits
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads(out.read_text())["results"]["digits_mlp"]
    assert set(rows) == {"eager", "bf16"}  # eager is added: the speed-ups are over it
    assert rows["eager"]["speedup"] == 1.0
    assert rows["bf16"]["speedup"] == pytest.approx(rows["eager"]["epoch_s"] / rows["bf16"]["epoch_s"], abs=1e-3)
    assert all(row["first_epoch_s"] > 0 and 0 < row["last_val_acc"] <= 1 for row in rows.values())
    bad = run_cli([str(ROOT / "benchmarks/speedups.py"), "--variants", "fp8"], cwd=project, timeout=120)
    assert bad.returncode == 2 and "unknown variant(s) fp8; choose from eager, compile, bf16, channels_last" in bad.stderr


def test_startup_benchmark_checks_that_help_does_not_import_lightning(project, tmp_path):
    out = tmp_path / "s.json"
    r = run_cli([str(ROOT / "benchmarks/startup.py"), "--repeats", "1", "--commands", "report --help,train --cfg job",
                 "--out", str(out)], cwd=project, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    record = json.loads(out.read_text())
    res = record["results"]
    assert set(res) == {"report --help", "train --cfg job"}
    # every results file says what ran it and on which CPU (figures depend on its vector extensions)
    from dlzoo.tracking.environment import cpu_isa, cpu_model

    assert record["command"] == ("python benchmarks/startup.py --repeats 1 --commands 'report --help,train --cfg job'"
                                 f" --out {out}")
    assert (record["cpu"], record["cpu_isa"], record["benchmark"]) == (cpu_model(), cpu_isa(), "startup")
    assert all(v["imports_lightning"] is False and v["median_s"] > 0 for v in res.values())


def test_models_benchmark_measures_latency_int8_and_memory(tmp_path):
    out = tmp_path / "m.json"
    r = run_cli([str(ROOT / "benchmarks/models.py"), "--models", "mlp,gru", "--repeats", "2", "--steps", "2",
                 "--out", str(out)], cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())["results"]
    for name in ("mlp", "gru"):
        row = res[name]
        assert row["latency_b256_us"] > row["latency_b1_us"] > 0 and row["int8_dynamic_latency_b1_us"] > 0
        assert row["params"] > 1000 and "train_peak_mib" in row


def test_pipeline_benchmark_groups_stage_times():
    """`make bench-pipeline` reports time per kind of stage; the CNN family's training apart from the rest."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_pipeline", ROOT / "benchmarks" / "pipeline.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    groups = bench.stage_groups({"prepare": 5.0, "train@digits_vgg16": 60.0, "train@digits_resnet18": 30.5,
                                 "train@digits_mlp": 10.0, "train@mnist1d_cnn1d": 20.0, "compress@digits_lenet5": 7.0})
    assert groups == {"prepare": 5.0, "train (CNN family)": 90.5, "train": 30.0, "compress": 7.0}


def test_distill_seeds_benchmark_names_the_command_that_trains_a_missing_teacher(tmp_path):
    r = run_cli([str(ROOT / "benchmarks/distill_seeds.py"), "--run", str(tmp_path / "digits_lenet5"),
                 "--out", str(tmp_path / "d.json")], cwd=tmp_path, timeout=120)
    assert r.returncode != 0 and "dvc repro train@digits_lenet5" in r.stderr
    assert not (tmp_path / "d.json").exists()



def test_step_profile_splits_a_step_into_its_parts(project, tmp_path):
    out = tmp_path / "p.json"
    r = run_cli([str(ROOT / "benchmarks/step_profile.py"), "--experiments", "mnist1d_logreg", "--epochs", "1",
                 "--out", str(out)], cwd=project, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())["us_per_step"]["mnist1d_logreg"]
    assert res["steps"] == -(-3400 // 128)  # one epoch of MNIST-1D's training split, batch 128
    parts = ("data", "to_device", "forward", "backward", "optimizer", "zero_grad")
    assert all(res[k] > 0 for k in parts), res
    assert {"callback:ModelCheckpoint", "callback:LearningRateMonitor"} <= set(res)
    # the batch's own parts sit inside Lightning's run_training_batch
    assert res["batch_total"] >= res["forward"] + res["backward"] + res["optimizer"] + res["zero_grad"]
