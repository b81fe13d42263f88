"""Attention options from the lectures: additive vs dot-product scores, truncated (local) self-attention."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import ROOT, compose, run_cli
from torch import nn

from dlzoo.errors import ConfigError
from dlzoo.models import get_model
from dlzoo.models.attention import AdditiveScore, DotScore, MultiHeadAttention


def test_additive_score_is_v_tanh_wq_plus_uk_by_hand():
    score = AdditiveScore(2, 2, 2)
    with torch.no_grad():
        score.w.weight.copy_(torch.tensor([[1.0, 0.0], [0.5, -1.0]]))
        score.u.weight.copy_(torch.tensor([[0.0, 2.0], [1.0, 1.0]]))
        score.u.bias.copy_(torch.tensor([0.1, -0.2]))
        score.v.copy_(torch.tensor([1.5, -0.5]))
    q, ks = [1.0, 2.0], [[0.5, -1.0], [2.0, 0.0]]
    # by hand: W q = [1, -1.5]; U k + b = [-1.9, -0.7] and [0.1, 1.8]
    expected = [1.5 * math.tanh(1 - 1.9) - 0.5 * math.tanh(-1.5 - 0.7),
                1.5 * math.tanh(1 + 0.1) - 0.5 * math.tanh(-1.5 + 1.8)]
    got = score(torch.tensor([[q]]), torch.tensor([ks]))  # (1, 1, 2)
    assert got.shape == (1, 1, 2)
    assert got[0, 0].tolist() == pytest.approx(expected, abs=1e-6)


def test_multi_head_additive_scores_match_the_formula_per_head():
    torch.manual_seed(0)
    att = MultiHeadAttention(8, 2, score="additive")
    q, k = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 5, 4)  # (B, H, T, dh), (B, H, S, dh)
    s = att.scores(q, k)
    for h in range(2):
        v = att.score_v[h, 0, 0]
        for i in range(3):
            for j in range(5):
                assert s[0, h, i, j].item() == pytest.approx((v * torch.tanh(q[0, h, i] + k[0, h, j])).sum().item(), abs=1e-6)


def test_dot_attention_equals_torch_multihead_attention():
    torch.manual_seed(0)
    ours, ref = MultiHeadAttention(16, 2), nn.MultiheadAttention(16, 2, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q.weight, ours.k.weight, ours.v.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q.bias, ours.k.bias, ours.v.bias]))
        ref.out_proj.load_state_dict(ours.out_proj.state_dict())
    x, pad = torch.randn(3, 7, 16), torch.zeros(3, 7, dtype=torch.bool)
    pad[1, 4:] = True
    torch.testing.assert_close(ours(x, x, x, key_padding_mask=pad)[0], ref(x, x, x, key_padding_mask=pad)[0])


def test_the_attention_option_switches_the_module():
    lstm = {a: get_model("lstm_seq2seq", input_shape=(7,), num_classes=12, attention=a).attn
            for a in ("general", "dot", "additive")}
    assert type(lstm["general"]) is nn.Linear and type(lstm["dot"]) is DotScore and type(lstm["additive"]) is AdditiveScore
    for attention, window, cls in (("dot", None, nn.MultiheadAttention), ("additive", None, MultiHeadAttention),
                                   ("dot", 2, MultiHeadAttention)):
        net = get_model("transformer", input_shape=(1, 40), num_classes=10, patch=4, attention=attention,
                        attention_window=window)
        attn = [layer.self_attn for layer in net.encoder.layers]
        assert all(type(a) is cls for a in attn)
        if cls is MultiHeadAttention:
            assert {(a.score, a.window) for a in attn} == {(attention, window)}
    with pytest.raises(ConfigError, match=r"model.attention='bahdanau'.*additive"):
        get_model("lstm_seq2seq", input_shape=(7,), num_classes=12, attention="bahdanau")
    with pytest.raises(ConfigError, match=r"model.attention_window=0"):
        get_model("transformer", input_shape=(1, 40), num_classes=10, attention_window=0)


def _changed(att, x, pos) -> torch.Tensor:
    """Which output positions move when input position ``pos`` changes: (T,) bool."""
    y = x.clone()
    y[:, pos] += torch.randn_like(y[:, pos])
    with torch.no_grad():
        return (att(x, x, x)[0] - att(y, y, y)[0]).abs().amax((0, 2)) > 1e-6


@pytest.mark.parametrize("score", ["dot", "additive"])
def test_local_attention_sees_only_its_window(score):
    torch.manual_seed(0)
    w, t = 2, 11
    att = MultiHeadAttention(16, 4, score=score, window=w).eval()
    x = torch.randn(2, t, 16)
    for pos in range(t):
        moved = _changed(att, x, pos)
        assert moved.tolist() == [abs(i - pos) <= w for i in range(t)], pos


def test_local_attention_with_a_window_past_the_ends_is_full_attention():
    torch.manual_seed(0)
    for score in ("dot", "additive"):
        full = MultiHeadAttention(16, 2, score=score)
        local = MultiHeadAttention(16, 2, score=score, window=20)
        local.load_state_dict(full.state_dict())
        x, pad = torch.randn(3, 9, 16), torch.zeros(3, 9, dtype=torch.bool)
        pad[2, 5:] = True
        torch.testing.assert_close(local(x, x, x, key_padding_mask=pad)[0], full(x, x, x, key_padding_mask=pad)[0])


def test_local_classifier_keeps_cls_global_and_tokens_local():
    torch.manual_seed(0)
    net = get_model("transformer", input_shape=(1, 40), num_classes=10, patch=4, num_layers=1, attention_window=1).eval()
    layer, w = net.encoder.layers[0], 1
    x = torch.randn(2, 11, 64)  # [CLS] + 10 tokens
    for pos in range(1, 11):
        moved = _changed(lambda a, b, c: (layer(a), None), x, pos)
        assert moved.tolist() == [i == 0 or abs(i - pos) <= w for i in range(11)], pos
    assert _changed(lambda a, b, c: (layer(a), None), x, 0).all()  # every token reads [CLS]


def test_local_transformer_experiment_trains(project):
    from dlzoo.train import run

    cfg = compose(["experiment=mnist1d_transformer_local", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                   "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1", "train.log_model=false",
                   "model.attention=additive", "trainer.enable_progress_bar=false"])
    assert cfg.model.attention_window == 2
    info = run(cfg, project / "out", [])
    assert info["status"] == "FINISHED" and 0.0 <= info["test"]["test/acc"] <= 1.0


def test_attention_cost_benchmark_measures_full_and_local(tmp_path):
    out = tmp_path / "cost.json"
    r = run_cli([str(ROOT / "benchmarks/attention_cost.py"), "--lengths", "32,256", "--window", "2", "--repeats", "1",
                 "--batch", "1", "--d-model", "8", "--heads", "2", "--out", str(out)], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = {(r["length"], r["arm"]): r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {(32, "full"), (32, "local"), (256, "full"), (256, "local")}
    assert all(r["ms"] > 0 for r in rows.values())
    # activation memory: full attention grows as T^2 (8x the length -> > 30x), local linearly (8x)
    assert rows[256, "full"]["saved_mb"] / rows[32, "full"]["saved_mb"] > 30
    assert rows[256, "local"]["saved_mb"] / rows[32, "local"]["saved_mb"] < 9
    assert rows[256, "local"]["saved_mb"] < rows[256, "full"]["saved_mb"] / 5


def test_activation_memory_counts_saved_tensors_and_is_lower_with_a_window():
    from dlzoo.claims.measures import saved_tensor_bytes

    a, b = torch.randn(100, requires_grad=True), torch.randn(100, requires_grad=True)
    assert saved_tensor_bytes(lambda: (a * b).sum()) == 2 * 100 * 4  # mul saves both float32 inputs
    x, y = torch.randn(64, 1, 40), torch.randint(0, 10, (64,))
    mb = {}
    for w in (None, 4):
        torch.manual_seed(0)
        net = get_model("transformer", input_shape=(1, 40), num_classes=10, patch=1, attention_window=w).train()
        mb[w] = saved_tensor_bytes(lambda: nn.functional.cross_entropy(net(x), y))
    assert mb[4] < mb[None]
