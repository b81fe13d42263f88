"""Dynamic pruning by channel gating: closed channels are never computed, the sparse path equals computing
every channel and masking, training follows the budget, and the compress recipe records it in MLflow."""

from __future__ import annotations

import copy

import mlflow
import pytest
import torch

from conftest import FAST, compose
from dlzoo.compress.gate import BudgetLoss, flops_per_input, gate_network, gates, gating_figures
from dlzoo.errors import ConfigError
from dlzoo.models import get_model


def _gated_cnn(open_share: float = 0.5, seed: int = 0):
    torch.manual_seed(seed)
    dense = get_model("cnn1d", input_shape=(1, 40), num_classes=10, channels=[8, 16, 32]).eval()
    for m in dense.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    gated = gate_network(copy.deepcopy(dense)).eval()
    for g in gates(gated):  # random gates: about open_share of the channels open per input
        torch.nn.init.normal_(g.gate.weight, std=2.0)
        torch.nn.init.constant_(g.gate.bias, torch.logit(torch.tensor(open_share)).item())
    return dense, gated


def test_sparse_path_equals_dense_then_mask_and_runs_fewer_flops():
    dense, gated = _gated_cnn()
    x = torch.randn(16, 1, 40)
    with torch.no_grad():
        for g in gates(gated):
            inp = torch.randn(16, g.conv.in_channels, 20)
            mask = g.gate_logits(inp) > 0
            assert 0 < mask.float().mean() < 1  # some open, some closed
            assert torch.allclose(g.sparse(inp, mask), g.dense_masked(inp, mask), atol=1e-5)
        out = gated(x)
    masks = [g.mask for g in gates(gated)]
    # the whole gated network equals the dense one with the closed channels zeroed after BatchNorm
    hooks = [m.register_forward_hook(lambda mod, a, y, i=i: y * masks[i][:, :, None])
             for i, m in enumerate(m for m in dense.modules() if isinstance(m, torch.nn.BatchNorm1d))]
    with torch.no_grad():
        ref = dense(x)
    for h in hooks:
        h.remove()
    assert torch.allclose(out, ref, atol=1e-5)
    # torch's FLOP counter sees only the open channels' convolutions
    full = flops_per_input(dense, x[:1])
    ran = flops_per_input(gated, x[:1])
    conv_flops = {c.out_channels: 2 * c.in_channels * c.kernel_size[0] * l
                  for c, l in zip((g.conv for g in gates(gated)), (40, 20, 10))}  # per output channel
    closed = [int((~g.mask[0]).sum()) for g in gates(gated)]
    gate_cost = sum(2 * g.gate.in_features * g.gate.out_features for g in gates(gated))
    expected = full - sum(k * conv_flops[g.conv.out_channels] for k, g in zip(closed, gates(gated))) + gate_cost
    assert ran == pytest.approx(expected, rel=1e-6) and ran < 0.8 * full


def test_all_open_gates_reproduce_the_source_and_figures_count_skips():
    dense, gated = _gated_cnn(open_share=0.999)
    for g in gates(gated):
        torch.nn.init.zeros_(g.gate.weight)
    x = torch.randn(20, 1, 40)
    with torch.no_grad():
        assert torch.allclose(gated(x), dense(x), atol=1e-5)
    figures = gating_figures(gated, dense, x, flops_inputs=3)
    assert figures["gate/channels_skipped"] == 0.0 and figures["gate/flops_skipped"] < 0  # only the gates' cost
    _, half = _gated_cnn(open_share=0.3)
    figures = gating_figures(half, dense, x, flops_inputs=5)
    assert 0.3 < figures["gate/channels_skipped"] < 0.95 and figures["gate/flops_skipped"] > 0.2


def test_budget_training_closes_channels_with_straight_through_gradients():
    torch.manual_seed(0)
    net = gate_network(get_model("cnn1d", input_shape=(1, 40), num_classes=10, channels=[8, 16]))
    loss_fn = BudgetLoss(net, keep=0.25, weight=50.0)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    x, y = torch.randn(64, 1, 40), torch.randint(0, 10, (64,))
    net.train()
    for _ in range(150):
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        assert all(g.gate.bias.grad is not None and g.gate.bias.grad.abs().sum() > 0 for g in gates(net))
        opt.step()
    net.eval()
    out = net(x)
    shares = torch.stack([g.mask.float().mean() for g in gates(net)])
    assert shares.mean().item() < 0.6  # started fully open (bias +0.5): the budget closed channels
    expected = torch.nn.functional.cross_entropy(out, y) + 50.0 * (shares - 0.25).pow(2).mean()
    assert loss_fn(out, y).item() == pytest.approx(expected.item(), rel=1e-5)  # the budget term, per layer
    with pytest.raises(ConfigError, match="Conv1d"):
        gate_network(get_model("mlp", input_shape=(1, 8, 8), num_classes=10))


def test_gate_recipe_is_recorded_under_its_source(project):
    from dlzoo.compress.runner import compress
    from dlzoo.train import run

    cfg = compose([*FAST, "experiment=mnist1d_cnn1d", "trainer.max_epochs=1", "train.log_model=false",
                   "train.test=false", "model.channels=[8,16,32]", "scheduler.total_steps=100"])
    src = run(cfg, project / "artifacts" / "runs" / "src", [])
    rows = compress(project / "artifacts" / "runs" / "src", ["gate_channels"], project / "artifacts" / "compressed",
                    ["finetune.epochs=1", "flops_inputs=5", "measure.repeats=2", "measure.warmup=1",
                     "measure.batches=[1]"])
    row = rows[-1]
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    r = client.get_run(row["run_id"])
    assert r.data.tags["mlflow.parentRunId"] == src["run_id"] and r.data.tags["dlzoo.compress.method"] == "gate"
    for key in ("gate/channels_skipped", "gate/flops_skipped", "gate/flops", "test/acc"):
        assert r.data.metrics[key] == pytest.approx(row[key])
    assert 0 <= row["gate/channels_skipped"] <= 1 and row["gate/flops"] > 0
    with pytest.raises(ConfigError, match=r"keep=1.5 must be in \(0, 1\]"):
        compress(project / "artifacts" / "runs" / "src", ["gate_channels"], project / "c2", ["keep=1.5"])


def test_report_puts_gating_beside_static_structured_pruning():
    from dlzoo.report.sections.compression import gating

    rows = [{"method": "gate", "recipe": "gate_channels", "source": "mnist1d_cnn1d", "test/acc": 0.9, "test/acc_delta": -0.02,
             "gate/channels_skipped": 0.45, "gate/flops_skipped": 0.38, "params/total": 60000},
            {"method": "prune", "recipe": "prune_structured", "source": "mnist1d_cnn1d", "test/acc": 0.88,
             "params/total": 30000}]
    text = " ".join(gating(rows))
    assert "45% of the channels and 38% of the FLOPs skipped per input" in text and "acc 0.9000 (-0.0200)" in text
    assert "static structured pruning of the same source: acc 0.8800 with 30,000 parameters" in text
    assert gating(rows[1:]) == []
