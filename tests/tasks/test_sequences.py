"""Sequence models: masks, positional encoding, decoding, packing, the synthetic seq2seq data and task."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import FAST, compose, tiny_sort_datamodule
from dlzoo.data.synthetic import BOS, EOS, PAD, make_seq2seq
from dlzoo.errors import ConfigError
from dlzoo.models import get_model
from dlzoo.models.seq2seq import beam_search, greedy_decode
from dlzoo.models.transformer import SinusoidalPositions
from dlzoo.tasks.seq2seq import sequence_scores

VOCAB = 12


def _s2s(name: str):
    torch.manual_seed(0)
    return get_model(name, input_shape=(8,), num_classes=VOCAB).eval()


def _src(b: int = 6, s: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    src = torch.randint(3, VOCAB, (b, s), generator=g)
    for i in range(b):
        src[i, 3 + i % (s - 3):] = PAD  # variable lengths
    return src


def test_decoder_never_attends_to_later_positions():
    net = _s2s("transformer_seq2seq")
    src, tgt = _src(), torch.randint(3, VOCAB, (6, 7))
    base = net(src, tgt)
    for t in range(6):
        changed = tgt.clone()
        changed[:, t + 1:] = (changed[:, t + 1:] + 1 - 3) % (VOCAB - 3) + 3  # perturb every later token
        out = net(src, changed)
        assert torch.allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-5)  # positions <= t unchanged
        assert not torch.allclose(out[:, t + 1:], base[:, t + 1:])  # the later ones do see the change


def test_sinusoidal_encoding_matches_the_formula():
    d = 16
    pe = SinusoidalPositions(d, max_len=50).pe
    for pos in (0, 1, 7, 49):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)


@pytest.mark.parametrize("name", ["transformer_seq2seq", "lstm_seq2seq"])
def test_beam_one_equals_greedy_and_wider_beams_score_no_worse(name):
    net, src = _s2s(name), _src()
    greedy = greedy_decode(net, src, 9)
    assert torch.equal(beam_search(net, src, 9, beam=1), greedy)

    def logprob(out):  # summed log-probability of each decoded row, up to and including EOS
        tgt_in = torch.cat([torch.full((len(out), 1), BOS), out[:, :-1]], 1)
        lp = net(src, tgt_in).log_softmax(-1).gather(-1, out[..., None])[..., 0]
        return (lp * (out != PAD)).sum(1)

    wide = beam_search(net, src, 9, beam=4)
    finished = (greedy == EOS).any(1) & (wide == EOS).any(1)
    assert (logprob(wide)[finished] >= logprob(greedy)[finished] - 1e-4).all()


def test_transformer_seq2seq_ignores_source_padding():
    net, src = _s2s("transformer_seq2seq"), _src()
    tgt = torch.randint(3, VOCAB, (len(src), 5))
    out = net(src, tgt)
    for i in range(len(src)):
        n = int((src[i] != PAD).sum())
        alone = net(src[i: i + 1, :n], tgt[i: i + 1])  # the same source unpadded
        assert torch.allclose(out[i], alone[0], atol=1e-5)


def test_lstm_encoder_packs_padding_away():
    net, src = _s2s("lstm_seq2seq"), _src()
    memory, _, h, c = net.encode(src)
    for i in range(len(src)):
        n = int((src[i] != PAD).sum())
        m1, _, h1, c1 = net.encode(src[i: i + 1, :n])  # the same sequence alone, unpadded
        assert torch.allclose(memory[i, :n], m1[0], atol=1e-5)
        assert torch.allclose(h[i], h1[0], atol=1e-5) and torch.allclose(c[i], c1[0], atol=1e-5)
        assert memory[i, n:].abs().sum() == 0


@pytest.mark.parametrize("name,bidirectional", [("rnn", False), ("lstm", True), ("gru", True)])
def test_rnn_classifiers_read_the_last_state_of_every_direction(name, bidirectional):
    net = get_model(name, input_shape=(1, 40), num_classes=10, hidden=8, bidirectional=bidirectional)
    assert net.head[-1].in_features == 8 * (2 if bidirectional else 1)
    assert net(torch.randn(3, 1, 40)).shape == (3, 10)


def test_rnn_patches_are_consecutive_samples_and_readout_all_sees_every_step():
    torch.manual_seed(0)
    net = get_model("gru", input_shape=(1, 40), num_classes=10, hidden=4, bidirectional=True, patch=2, readout="all")
    assert net.rnn.input_size == 2 and net.head[-1].in_features == 20 * 2 * 4  # 20 steps x 2 directions x 4
    x = torch.randn(3, 1, 40)
    steps = x.view(3, 20, 2)  # step t = samples (2t, 2t+1)
    out, _ = net.rnn(steps)
    assert torch.allclose(net(x), net.head(out.flatten(1)))
    with pytest.raises(ConfigError, match="patch"):
        get_model("gru", input_shape=(1, 40), num_classes=10, patch=3)


def test_cnn1d_stages_hold_convs_per_stage_convolutions():
    net = get_model("cnn1d", input_shape=(1, 40), num_classes=10, channels=[4, 8], kernel_size=3, convs_per_stage=2)
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv1d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 4), (4, 4), (4, 8), (8, 8)]
    assert sum(isinstance(m, torch.nn.MaxPool1d) for m in net.features) == 1
    assert net(torch.randn(2, 1, 40)).shape == (2, 10)


def test_transformer_classifier_learned_positions():
    net = get_model("transformer", input_shape=(1, 40), num_classes=10, positions="learned", patch=4)
    assert net(torch.randn(2, 1, 40)).shape == (2, 10)
    assert net.pos.emb.weight.shape[0] == 11  # 10 patches + [CLS]


def test_sequence_scores():
    target = torch.tensor([[5, 6, EOS, PAD], [5, 6, 7, EOS]])
    pred = torch.tensor([[5, 6, EOS], [5, 7, 7]])  # row 1 misses a token and EOS
    exact, tok = sequence_scores(pred, target)
    assert exact.tolist() == [1.0, 0.0]
    assert tok.tolist() == pytest.approx([1.0, 0.5])
    for too_long in ([[5, 6, EOS, 9]], [[5, 6, EOS, PAD, 9]]):  # a token after the target's end
        assert sequence_scores(torch.tensor(too_long), target[:1])[0].item() == 0.0


def test_synthetic_sort_data_is_held_out_and_well_formed():
    d = make_seq2seq(3, sizes={"train": 2000, "val": 100, "test": 200}, per_length=20)
    rows = {s: {r.tobytes() for r in d[f"src_{s}"]} for s in ("train", "val", "test", "long")}
    for s in ("val", "test", "long"):
        assert not rows[s] & rows["train"]
    src, tgt = d["src_test"], d["tgt_test"]
    n = (src != PAD).sum(1)
    assert n.min() >= 4 and n.max() <= 10 and (d["src_long"] != PAD).sum(1).max() == 20
    assert (tgt[:, 0] == BOS).all() and (tgt[np.arange(len(n)), n + 1] == EOS).all()
    for s, t, k in zip(src, tgt, n):
        assert (t[1:k + 1] == np.sort(s[:k])).all()
    again = make_seq2seq(3, sizes={"train": 2000, "val": 100, "test": 200}, per_length=20)
    assert all(np.array_equal(d[k], again[k]) for k in d)  # seeded


def test_shuffled_mnist1d_is_one_fixed_permutation(splits_dir):
    perm = np.load(splits_dir / "mnist1d_shuffled" / "permutation.npy")
    assert sorted(perm.tolist()) == list(range(40)) and (perm != np.arange(40)).any()
    for split in ("train", "test"):
        x = np.load(splits_dir / "mnist1d" / f"x_{split}.npy")
        xs = np.load(splits_dir / "mnist1d_shuffled" / f"x_{split}.npy")
        assert np.array_equal(xs, x[:, perm])


@pytest.mark.slow  # decodes 3,200 val/test/long sequences: 440 s on the loaded 2-core dev machine
def test_seq2seq_trains_and_evaluates_end_to_end(project):
    import json

    from dlzoo.evaluate import evaluate
    from dlzoo.train import run

    cfg = compose(["experiment=seq2seq_transformer", *FAST, "trainer.max_epochs=1", "trainer.limit_train_batches=3",
                   "seq2seq.scheduled_sampling=0.5", "model.num_layers=1", "model.d_model=32"])
    info = run(cfg, project / "out", [])
    assert info["status"] == "FINISHED" and "test/beam_acc" in info["test"]
    summary = evaluate(project / "out", project / "eval")
    assert summary["task"] == "seq2seq" and {"test/acc", "test/token_acc", "test/beam_acc"} <= set(summary)
    curve = sorted(int(k.rsplit("_", 1)[1]) for k in summary if k.startswith("long/acc_len_"))
    assert curve[-1] == 20 and summary["long/train_len_max"] == 10
    json.dumps(summary)
    assert (project / "eval" / "predictions.csv").read_text().startswith("actual,predicted")


# The bars, reached by the default pipeline's own experiment configs (as tests/bars/test_bars.py does).
BARS = {"mnist1d_logreg": (0.27, 0.37), "mnist1d_mlp": (0.68, 1.0), "mnist1d_cnn1d": (0.99, 1.0),
        "mnist1d_gru": (0.91, 1.0), "seq2seq_transformer": (0.99, 1.0)}


@pytest.mark.slow
@pytest.mark.parametrize("experiment", sorted(BARS))
def test_sequence_experiment_reaches_its_bar(experiment, project):
    from dlzoo.train import run

    lo, hi = BARS[experiment]
    info = run(compose([f"experiment={experiment}", *FAST, "train.log_model=false"]), project / "out", [])
    acc = info["test"]["test/acc"]
    print(f"{experiment}: test/acc={acc:.4f} (bar {lo}-{hi})")
    assert lo <= acc <= hi


@pytest.mark.slow
def test_shuffling_removes_the_cnn_and_gru_advantage(project):
    from dlzoo.train import run

    acc = {e: run(compose([f"experiment={e}", *FAST, "train.log_model=false"]), project / e, [])["test"]["test/acc"]
           for e in ("mnist1d_shuffled_mlp", "mnist1d_shuffled_cnn1d", "mnist1d_shuffled_gru")}
    print(acc)
    for model in ("cnn1d", "gru"):  # regular: about +0.3 (cnn1d) and +0.25 (gru) over the MLP
        assert acc[f"mnist1d_shuffled_{model}"] - acc["mnist1d_shuffled_mlp"] < 0.1


def test_seq2seq_test_run_logs_the_length_curve_of_the_long_split(tmp_path):
    import lightning.pytorch as pl

    from dlzoo.tasks.seq2seq import Seq2SeqTask

    dm, arrays = tiny_sort_datamodule(tmp_path)
    torch.manual_seed(0)
    net = get_model("transformer_seq2seq", input_shape=dm.input_shape, num_classes=dm.num_classes, d_model=16,
                    nhead=2, num_layers=1, dim_feedforward=32)
    task = Seq2SeqTask(net, torch.optim.Adam, beam_size=2)
    def trainer() -> pl.Trainer:
        return pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                          enable_checkpointing=False)

    results = trainer().test(task, datamodule=dm, verbose=False)[0]
    long_lens = (arrays["src_long"] != PAD).sum(1)
    assert [k for k in results if k.startswith("long/acc_len_")] == [f"long/acc_len_{n}" for n in np.unique(long_lens)]
    assert results["long/train_len_min"] == 2 and results["long/train_len_max"] == 4
    # the curve is greedy exact accuracy per length: the same as scoring each length's rows by hand
    n = int(long_lens.max())
    rows = torch.from_numpy(arrays["src_long"][long_lens == n]), torch.from_numpy(arrays["tgt_long"][long_lens == n])
    assert results[f"long/acc_len_{n}"] == pytest.approx(task.length_curve([rows])[f"long/acc_len_{n}"])
    # bare dataloaders (no datamodule): no curve
    assert not any(k.startswith("long/") for k in trainer().test(task, dataloaders=dm.test_dataloader(), verbose=False)[0])


def test_report_section_shows_mnist1d_side_by_side_and_the_length_curve(tmp_path):
    from dlzoo.report.sections.sequences import section

    rows = [{"name": f"{d}_{m}", "model": m, "dataset": d, "test/acc": acc}
            for (m, d), acc in {("gru", "mnist1d"): 0.93, ("gru", "mnist1d_shuffled"): 0.6,
                                ("cnn1d", "mnist1d"): 0.99, ("mlp", "mnist1d_shuffled"): 0.66}.items()]
    rows.append({"name": "seq2seq_transformer", "model": "transformer_seq2seq", "dataset": "sort", "test/acc": 0.995,
                 "long/acc_len_4": 1.0, "long/acc_len_12": 0.5, "long/acc_len_20": 0.0,
                 "long/train_len_min": 4.0, "long/train_len_max": 10.0})
    md = section(rows, tmp_path)
    assert "| gru | 93.0% | 91.0% | 60.0% | 57.0% |" in md and "| cnn1d | 99.0% | 94.0% |  | 56.0% |" in md
    assert "| 4 (trained) | 100.0% |" in md and "| 12 | 50.0% |" in md and "| 20 | 0.0% |" in md
    assert (tmp_path / "seq2seq_lengths.png").stat().st_size > 0


def test_transformer_batchnorm_variant_normalises_with_batchnorm_in_eval():
    """model.norm=batch: every norm is BatchNorm over the tokens' features, in training and in eval (where
    nn.TransformerEncoderLayer's fused no-grad fast path would apply LayerNorm's formula to these weights)."""
    from dlzoo.models.transformer import BatchNormEncoderLayer, TokenBatchNorm

    torch.manual_seed(0)
    net = get_model("transformer", input_shape=(1, 40), num_classes=10, patch=4, norm="batch")
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in net.modules())
    assert all(isinstance(layer, BatchNormEncoderLayer) for layer in net.encoder.layers)
    x = torch.randn(16, 1, 40)
    net.train()
    net(x).sum().backward()  # running statistics move
    net.eval()
    with torch.no_grad():
        fast = net(x)
    slow = net(x)  # grad enabled: no fused path
    assert torch.allclose(fast, slow, atol=1e-5)
    bn = net.encoder.layers[0].norm1
    assert isinstance(bn, TokenBatchNorm) and bn.num_batches_tracked.item() == 1
