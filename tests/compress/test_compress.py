"""Compression: pruning, quantization, distillation and their measurements on tiny models, and the
`dlzoo.compress` runner end to end on a real (1-epoch) training run with a real MLflow store."""

from __future__ import annotations

import io
import json

import mlflow
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from conftest import FAST, compose
from dlzoo.compress import measure as M
from dlzoo.compress import prune as P
from dlzoo.compress import quantize as Q
from dlzoo.tasks.distill import kd_loss


def tiny_mlp(width: int = 64) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 3))


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64 * 4 * 4, 3)).eval()


def test_step_amounts_reach_the_schedule():
    amounts = P.step_amounts([0.5, 0.75, 0.9])
    assert amounts == pytest.approx([0.5, 0.5, 0.6])
    remaining = 1.0
    for a in amounts:
        remaining *= 1 - a
    assert 1 - remaining == pytest.approx(0.9)
    with pytest.raises(ValueError, match="rise"):
        P.step_amounts([0.75, 0.5])


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_iterative_unstructured_pruning_hits_the_target(scope):
    net = tiny_mlp()
    calls = []
    pruned = P.iterative_prune(net, [0.5, 0.75, 0.9], scope, finetune=lambda m: m,
                               on_step=lambda step, target, m: calls.append((step, target)))
    assert calls == [(0, 0.5), (1, 0.75), (2, 0.9)]
    table = M.sparsity_table(pruned)
    assert table[-1]["layer"] == "total" and table[-1]["sparsity"] == pytest.approx(0.9, abs=0.005)
    if scope == "layer":  # every layer loses the same fraction
        assert all(r["sparsity"] == pytest.approx(0.9, abs=0.02) for r in table[:-1])
    # masks made permanent: plain parameters again, the original untouched
    assert not any(n.endswith("_orig") for n, _ in pruned.named_parameters())
    assert M.param_counts(net)[1] == M.param_counts(net)[0]
    # a 90%-sparse model's weights file is much smaller than the dense one (CSR storage)
    assert len(M.serialize(pruned)) < 0.5 * len(M.serialize(net))
    state = M.unpack_state_dict(torch.load(io.BytesIO(M.serialize(pruned)), weights_only=False))
    assert all(torch.equal(state[k], v) for k, v in pruned.state_dict().items())


def test_lottery_rewind_restores_surviving_initial_weights():
    net, init = tiny_mlp(), tiny_mlp(width=64)
    with torch.no_grad():
        for p in init.parameters():
            p.add_(1.0)  # differs from net
    pruned = P.iterative_prune(net, [0.5], "global", finetune=lambda m: m, init_state=init.state_dict())
    w, w0 = pruned[1].weight, init[1].weight
    assert torch.equal(w[w != 0], w0[w != 0])


def test_structured_shrink_removes_dead_neurons_exactly():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    with torch.no_grad():  # 8 dead hidden neurons: no input weights, no bias, no output weights
        net[1].weight[:8] = 0
        net[1].bias[:8] = 0
        net[3].weight[:, :8] = 0
    x = torch.randn(5, 1, 4, 4)
    small = P.shrink(net, x[:2], num_classes=3, target_params=0.6, steps=1, max_ratio=0.5)
    assert small[1].out_features == 8 and small[3].in_features == 8
    assert sum(p.numel() for p in small.parameters()) == 16 * 8 + 8 + 8 * 3 + 3
    torch.testing.assert_close(small(x), net(x))


def test_structured_shrink_halves_a_cnn():
    net = tiny_cnn()
    x = torch.randn(4, 1, 8, 8)
    small = P.shrink(net, x[:2], num_classes=3, target_params=0.5)
    n0, n1 = (sum(p.numel() for p in m.parameters()) for m in (net, small))
    assert n1 <= 0.5 * n0 and small(x).shape == (4, 3)
    assert small[-1].out_features == 3  # the classifier keeps its outputs
    assert len(M.serialize(small)) < 0.6 * len(M.serialize(net))


def test_dynamic_quantization_is_smaller_and_close():
    net = nn.Sequential(nn.Flatten(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    q = Q.quantize_dynamic(net, ["Linear"])
    x = torch.randn(64, 1, 16, 16)
    assert len(M.serialize(net)) / len(M.serialize(q)) >= 3.5
    assert (q(x).argmax(1) == net(x).argmax(1)).float().mean() >= 0.9
    assert M.param_counts(q)[0] == M.param_counts(net)[0]  # the packed int8 weights are counted
    with pytest.raises(ValueError, match="Conv2d"):
        Q.quantize_dynamic(net, ["Conv2d"])


def test_static_and_qat_quantization_fuse_and_stay_close():
    net = tiny_cnn()
    x = torch.randn(32, 1, 8, 8)
    q = Q.quantize_static(net, [x], x[:2])
    names = {type(m).__name__ for m in q.modules()}
    assert "ConvReLU2d" in names  # conv-bn-relu fused into one int8 module
    assert len(M.serialize(q)) < 0.4 * len(M.serialize(net))
    assert (q(x) - net(x)).abs().max() < 0.1 * net(x).abs().max()
    trained = []

    def train(m: nn.Module) -> nn.Module:
        trained.append(m.training)
        m(x)  # fake-quant observers see data
        return m

    qat = Q.quantize_qat(net, x[:2], train=train)
    assert trained == [True] and "ConvReLU2d" in {type(m).__name__ for m in qat.modules()}


def test_static_int8_lenet5_file_is_3_5x_smaller_and_loads_back():
    """The packed file holds int8 weights, float32 per-channel scales and no per-scalar zip records (torch's
    own format: 3.3x on LeNet-5), and loads back into the quantized model exactly."""
    from dlzoo.models import get_model

    nets = []
    for seed in (0, 1):  # the second, quantized the same way, has the same modules and other weights
        torch.manual_seed(seed)
        nets.append(get_model("lenet5", input_shape=(1, 32, 32), num_classes=10).eval())
    x = torch.randn(32, 1, 32, 32)
    for quantize in (lambda n: Q.quantize_static(n, [x], x[:2]), lambda n: Q.quantize_dynamic(n, ["Linear"])):
        q, other = quantize(nets[0]), quantize(nets[1])
        blob = M.serialize(q)
        if "ConvReLU2d" in {type(m).__name__ for m in q.modules()}:
            assert len(M.serialize(nets[0])) / len(blob) >= 3.5
        assert not torch.equal(other(x), q(x))
        other.load_state_dict(M.unpack_state_dict(torch.load(io.BytesIO(blob), weights_only=False)))
        assert torch.equal(other(x), q(x))


def test_latency_is_a_positive_median():
    assert 0 < M.latency_us(tiny_mlp(), (1, 4, 4), batch=8, repeats=3, warmup=1) < 1e6


def test_kd_loss_matches_the_formula():
    torch.manual_seed(0)
    zs, zt, y = torch.randn(6, 5), torch.randn(6, 5), torch.randint(0, 5, (6,))
    T, a = 3.0, 0.7
    ps, pt = torch.softmax(zs / T, 1), torch.softmax(zt / T, 1)
    kl = (pt * (pt.log() - ps.log())).sum(1).mean()
    expected = a * T * T * kl + (1 - a) * nn.functional.cross_entropy(zs, y)
    assert kd_loss(zs, zt, y, T, a).item() == pytest.approx(expected.item(), rel=1e-5)
    assert kd_loss(zs, zs, y, T, 1.0).item() == pytest.approx(0.0, abs=1e-6)  # student = teacher


def test_distillation_task_trains_the_student_only():
    import functools

    from dlzoo.tasks.distill import DistillationTask

    student, teacher = tiny_mlp(8), nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(16, 3))
    task = DistillationTask(student, teacher, temperature=2.0, alpha=0.5, num_classes=3,
                            optimizer=functools.partial(torch.optim.SGD, lr=0.1))
    task.train()
    assert student.training and not teacher.training  # teacher dropout off while the student trains
    x, y = torch.randn(4, 1, 4, 4), torch.randint(0, 3, (4,))
    loss = task.training_step((x, y), 0)
    assert loss.item() == pytest.approx(kd_loss(student(x), teacher(x), y, 2.0, 0.5).item(), rel=1e-5)
    opt = task.configure_optimizers()
    optimized = {id(p) for g in opt.param_groups for p in g["params"]}
    assert optimized == {id(p) for p in student.parameters()}


def test_pareto_front():
    from dlzoo.report.sections.compression import pareto_front

    pts = [(10, 0.9), (5, 0.95), (1, 0.5), (5, 0.8), (20, 0.99)]
    assert pareto_front(pts) == [2, 1, 4]


def test_report_says_plainly_where_int8_is_not_faster():
    from dlzoo.report.sections.compression import int8_speed

    row = {"method": "quantize", "name": "digits_lenet5/quantize_static", "speedup/b1": 0.8, "speedup/b256": 0.5,
           "cpu": "AVX2"}
    text = " ".join(int8_speed([row, {"method": "prune", "name": "x", "speedup/b256": 2.0}]))
    assert "0.50x at batch 256" in text and "not faster" in text and "AVX2" in text
    text = " ".join(int8_speed([row | {"speedup/b256": 1.7}]))
    assert "pays" in text and "not faster" not in text
    assert int8_speed([{"method": "prune", "name": "x", "speedup/b256": 2.0}]) == []


def test_student_epochs_resize_the_teachers_cosine_schedule(tmp_path):
    from dlzoo.compress.distill import student_configs

    teacher = compose(["experiment=mnist1d_cnn1d", "scheduler=cosine"])  # a teacher on a cosine schedule
    teacher = OmegaConf.create(OmegaConf.to_container(teacher, resolve=True))  # as saved: T_max a number
    recipe = OmegaConf.create({"student": {"model": "cnn1d", "overrides": {"channels": [4, 8]}}, "temperature": 2.0,
                               "alpha": 0.9, "epochs": 45})
    cfgs = student_configs(teacher, tmp_path, recipe, "e", "r")
    for cfg in cfgs.values():  # both students: the same budget, one full cosine cycle over their 45 epochs
        assert cfg.trainer.max_epochs == 45 and cfg.scheduler.T_max == 45 and cfg.model.channels == [4, 8]
    assert cfgs["distilled"].distill.temperature == 2.0 and cfgs["scratch"].task == "classify"


def test_student_config_changes_both_students_and_refuses_unknown_keys(tmp_path):
    from dlzoo.compress.distill import student_configs
    from dlzoo.compress.runner import load_recipe
    from dlzoo.errors import ConfigError

    teacher = compose(["experiment=digits_lenet5"])
    teacher = OmegaConf.create(OmegaConf.to_container(teacher, resolve=True))
    assert teacher.regularizer.augment.translate > 0 and teacher.callbacks.early_stopping is not None
    recipe = load_recipe("distill_lenet300", ["seed=7"])
    cfgs = student_configs(teacher, tmp_path, recipe, "e", "r")
    for cfg in cfgs.values():  # Hinton et al.'s setting: neither student sees the teacher's augmentation
        assert cfg.regularizer.augment.translate == 0.0 and cfg.callbacks.early_stopping is None
        assert cfg.seed == 7 and cfg.trainer.max_epochs == recipe.epochs and cfg.model.hidden == [300, 100]
        assert cfg.data.image_size == 32  # the teacher's input
    assert teacher.seed == 42 and teacher.regularizer.augment.translate > 0  # the teacher's config is untouched
    recipe.student.config = {"regularizer.augment.translat": 0.0}
    with pytest.raises(ConfigError, match="regularizer.augment.translat"):
        student_configs(teacher, tmp_path, recipe, "e", "r")


def test_cli_takes_recipe_overrides_after_the_options(tmp_path):
    from dlzoo.compress.cli import main

    # parsed (README's `--recipes distill temperature=2 alpha=0.5`), then refused for the missing run, not by argparse
    with pytest.raises(SystemExit, match="run_info.json"):
        main([str(tmp_path / "none"), "--recipes", "distill", "temperature=2", "alpha=0.5"])


def test_report_states_the_fraction_of_the_distillation_gap_closed():
    from dlzoo.report.sections.compression import distill_gaps, gap_closed

    assert gap_closed(0.99, 0.95, 0.97) == pytest.approx(0.5)
    rows = [{"source": "t", "role": None, "method": "prune", "test/acc": 0.98},
            {"source": "t", "role": "distilled", "method": "distill", "test/acc": 0.96, "source/test/acc": 0.98},
            {"source": "t", "role": "scratch", "method": "distill", "test/acc": 0.90, "source/test/acc": 0.98}]
    text = " ".join(distill_gaps(rows))
    assert "teacher 0.9800" in text and "75% of the gap closed" in text
    assert distill_gaps(rows[:2]) == []  # no scratch student: nothing to compare with
    assert gap_closed(0.97, 0.98, 0.99) is None  # the scratch student beats the teacher: no gap, not -100%
    rows[2]["test/acc"] = 0.98
    assert "no gap to close" in " ".join(distill_gaps(rows))


def test_compress_records_nested_runs_and_metrics(project):
    """A 1-epoch MLP on digits, then quantization, pruning and distillation through the runner."""
    from dlzoo.compress.runner import compress, write_metrics
    from dlzoo.train import run

    cfg = compose([*FAST, "experiment=digits_mlp", "trainer.max_epochs=1", "train.log_model=false",
                   "train.test=false"])
    src = run(cfg, project / "artifacts" / "runs" / "src", [])
    rows = compress(project / "artifacts" / "runs" / "src", ["quantize_dynamic", "prune_global", "distill"],
                    project / "artifacts" / "compressed", ["finetune.epochs=1", "schedule=[0.5]", "epochs=1",
                                                           "student.model=mlp", "~student.overrides",
                                                           "measure.repeats=2", "measure.warmup=1"])
    by = {r["name"].split("/")[-1]: r for r in rows}
    by["src"] = by.pop(cfg.name)  # the source row carries its experiment's name
    assert set(by) == {"src", "quantize_dynamic", "prune_global", "distill-distilled", "distill-scratch"}
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    source = client.get_run(src["run_id"])
    assert source.data.metrics["size/bytes"] == by["src"]["size/bytes"]  # the source gets its figures too
    for label, row in by.items():
        if label == "src":
            continue
        r = client.get_run(row["run_id"])
        assert r.data.tags["mlflow.parentRunId"] == src["run_id"] == r.data.tags["dlzoo.source_run_id"]
        assert r.info.experiment_id == source.info.experiment_id and r.info.status == "FINISHED"
        for key in ("test/acc", "test/acc_delta", "params/total", "params/nonzero", "sparsity", "size/bytes",
                    "latency/b1_us", "latency/b256_us", "compression_ratio"):
            assert r.data.metrics[key] == pytest.approx(row[key]), (label, key)
        arts = {a.path for a in client.list_artifacts(row["run_id"])}
        assert {"weights.pt", "sparsity.csv", "sparsity.json"} <= arts, (label, arts)
        assert row["test/acc_delta"] == pytest.approx(row["test/acc"] - by["src"]["test/acc"])
    assert by["quantize_dynamic"]["compression_ratio"] > 3.0
    qmodel = mlflow.pytorch.load_model(f"runs:/{by['quantize_dynamic']['run_id']}/model")  # the compressed model
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized.dynamic") for m in qmodel.modules())
    assert qmodel(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert by["prune_global"]["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert len(client.get_metric_history(by["prune_global"]["run_id"], "prune/acc")) == 1
    assert {by["distill-distilled"]["role"], by["distill-scratch"]["role"]} == {"distilled", "scratch"}
    student = client.get_run(by["distill-distilled"]["run_id"])
    assert student.data.params["task"] == "distill" and student.data.params["distill.temperature"] == "2.0"
    assert client.get_run(by["distill-scratch"]["run_id"]).data.params["task"] == "classify"
    write_metrics(rows, project / "metrics" / "compress" / "src.json")
    keyed = json.loads((project / "metrics" / "compress" / "src.json").read_text())
    assert set(keyed) == {"source", "quantize_dynamic", "prune_global", "distill-distilled", "distill-scratch"}


def test_unknown_recipe_lists_choices(project):
    from dlzoo.compress.runner import load_recipe

    with pytest.raises(ValueError, match="prune_global"):
        load_recipe("nosuch")


def test_qat_model_runs_after_its_deterministic_fine_tuning():
    """QAT fine-tunes with Trainer(deterministic=True), which turns strict determinism back on; quantized CPU
    kernels have no deterministic variant, so the converted model must still run (it raised in `make run`)."""
    import torch

    from dlzoo.compress.quantize import quantize_qat
    from dlzoo.models import get_model

    def fine_tune(model):
        torch.use_deterministic_algorithms(True)  # what Lightning's Trainer(deterministic=True) does
        return model

    net = get_model("lenet5", input_shape=(1, 32, 32), num_classes=10)
    try:
        q = quantize_qat(net, torch.randn(2, 1, 32, 32), fine_tune)
        assert q(torch.randn(5, 1, 32, 32)).shape == (5, 10)
    finally:
        torch.use_deterministic_algorithms(False)
