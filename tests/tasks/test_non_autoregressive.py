"""Non-autoregressive decoding (a length classifier, all output tokens in one decoder pass) on the seq2seq task."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from conftest import tiny_sort_datamodule
from dlzoo.data.synthetic import EOS, PAD
from dlzoo.errors import ConfigError
from dlzoo.models import get_model
from dlzoo.models.seq2seq import greedy_decode, nat_decode
from dlzoo.tasks.seq2seq import Seq2SeqTask

TINY = dict(d_model=16, nhead=2, num_layers=1, dim_feedforward=32)


@pytest.fixture
def sort_dm(tmp_path):
    return tiny_sort_datamodule(tmp_path)[0]


def _calls(module: torch.nn.Module) -> list:
    calls: list = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_nat_decoder_makes_one_pass_per_batch_and_the_autoregressive_one_a_pass_per_token():
    torch.manual_seed(0)
    src = torch.randint(3, 12, (5, 6))
    src[1, 3:] = PAD
    nat, ar = (get_model(n, input_shape=(6,), num_classes=12, **TINY).eval() for n in ("nat_seq2seq", "transformer_seq2seq"))
    nat_calls, ar_calls = _calls(nat.transformer.decoder), _calls(ar.transformer.decoder)
    out = nat_decode(nat, src, max_len=9)
    assert len(nat_calls) == 1
    n = (out != PAD).sum(1)  # the predicted length: EOS last, PAD after
    assert all(out[b, n[b] - 1] == EOS and (out[b, n[b]:] == PAD).all() for b in range(5))
    greedy_decode(ar, src, max_len=9)
    assert len(ar_calls) > 1  # one pass per output token (until every row ends or max_len)
    with pytest.raises(TypeError, match="nat_decode"):
        greedy_decode(nat, src, max_len=9)


def test_nat_outputs_do_not_depend_on_target_tokens_only_on_target_lengths():
    torch.manual_seed(0)
    net = get_model("nat_seq2seq", input_shape=(6,), num_classes=12, dropout=0.0, **TINY).eval()
    src = torch.randint(3, 12, (2, 6))
    a, b = torch.randint(3, 12, (2, 5)), torch.randint(3, 12, (2, 5))  # other target tokens, same lengths
    a[:, 0] = b[:, 0] = 1  # BOS
    torch.testing.assert_close(net(src, a), net(src, b))
    # a shorter row (BOS y1 y2 EOS PAD) has 3 output positions, the padded rest does not change them
    short = a.clone()
    short[0, 3:] = torch.tensor([EOS, PAD])
    enc = net.encode(src)
    torch.testing.assert_close(net(src, short)[0, :3], net.decode_all(enc, torch.tensor([3, 5]), 5)[0, :3])


def test_the_length_loss_is_part_of_training(sort_dm):
    torch.manual_seed(0)
    net = get_model("nat_seq2seq", input_shape=sort_dm.input_shape, num_classes=sort_dm.num_classes, dropout=0.0, **TINY)
    src, tgt = next(iter(sort_dm.train_dataloader()))
    with_len, without = (Seq2SeqTask(net, torch.optim.Adam, length_loss_weight=w) for w in (2.0, 0.0))
    loss_with, loss_without = with_len._teacher_forced(src, tgt)[0], without._teacher_forced(src, tgt)[0]
    from dlzoo.tasks.seq2seq import trim

    src, tgt = trim(src), trim(tgt)
    n_out = (tgt[:, 1:] != PAD).sum(1)  # tokens + EOS
    offset = n_out - (src != PAD).sum(1) + net.max_offset  # the class of N - S (sorting: always +1)
    assert (offset == net.max_offset + 1).all()
    length_ce = torch.nn.functional.cross_entropy(net.length_logits(net.encode(src)), offset)
    assert (loss_with - loss_without).item() == pytest.approx(2.0 * length_ce.item(), rel=1e-5)
    loss_with.backward()
    assert net.length_head.weight.grad.abs().sum() > 0
    # and a real fit trains it: the length classifier's weights move
    before = net.length_head.weight.detach().clone()
    pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
               enable_checkpointing=False, limit_val_batches=0).fit(with_len, datamodule=sort_dm)
    assert not torch.equal(before, net.length_head.weight)


def test_nat_task_logs_exact_match_decode_time_and_length_accuracy(sort_dm):
    torch.manual_seed(0)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False)
    results = {}
    for name in ("nat_seq2seq", "transformer_seq2seq"):
        net = get_model(name, input_shape=sort_dm.input_shape, num_classes=sort_dm.num_classes, **TINY)
        results[name] = trainer.test(Seq2SeqTask(net, torch.optim.Adam, beam_size=2), datamodule=sort_dm, verbose=False)[0]
    nat, ar = results["nat_seq2seq"], results["transformer_seq2seq"]
    assert {"test/acc", "test/token_acc", "test/decode_ms", "test/length_acc", "test/length_loss"} <= set(nat)
    assert "test/beam_acc" not in nat and not any(k.startswith(("val/", "train/")) for k in nat)
    assert {"test/acc", "test/decode_ms", "test/beam_acc"} <= set(ar) and "test/length_acc" not in ar
    assert nat["test/decode_ms"] > 0 and ar["test/decode_ms"] > 0
    assert 0.0 <= nat["test/length_acc"] <= 1.0


def test_nat_refuses_scheduled_sampling():
    net = get_model("nat_seq2seq", input_shape=(6,), num_classes=12, **TINY)
    with pytest.raises(ConfigError, match="scheduled_sampling"):
        Seq2SeqTask(net, torch.optim.Adam, scheduled_sampling=0.3)


def test_nat_run_records_decode_time_and_length_loss_in_mlflow(project):
    import mlflow
    from conftest import FAST, compose

    from dlzoo.tracking.mlflow_utils import tracking_uri
    from dlzoo.train import run

    cfg = compose(["experiment=seq2seq_nat", *FAST, "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                   "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=2", "model.d_model=16",
                   "model.num_layers=1", "model.dim_feedforward=32"])
    info = run(cfg, project / "out", [])
    metrics = mlflow.MlflowClient(tracking_uri()).get_run(info["run_id"]).data.metrics
    assert {"test/acc", "test/decode_ms", "test/length_acc", "train/length_loss", "val/length_loss"} <= set(metrics)
    assert metrics["test/decode_ms"] > 0
    from dlzoo.evaluate import evaluate

    summary = evaluate(project / "out", project / "eval")  # decodes with nat_decode, length curve included
    assert summary["model"] == "nat_seq2seq" and "test/decode_ms" in summary and "long/acc_len_20" in summary


def test_report_lists_decoders_and_attention_variants(tmp_path):
    from dlzoo.report.sections.sequences import section

    rows = [{"name": "seq2seq_transformer", "model": "transformer_seq2seq", "dataset": "sort", "test/acc": 0.99,
             "test/token_acc": 0.995, "test/decode_ms": 6.5},
            {"name": "seq2seq_nat", "model": "nat_seq2seq", "dataset": "sort", "test/acc": 0.4, "test/token_acc": 0.8,
             "test/decode_ms": 0.9},
            {"name": "mnist1d_transformer", "model": "transformer", "dataset": "mnist1d", "test/acc": 0.9},
            {"name": "mnist1d_transformer_local", "model": "transformer", "dataset": "mnist1d", "test/acc": 0.85}]
    md = section(rows, tmp_path)
    assert "| seq2seq_nat | sort | nat_seq2seq | 40.0% | 80.0% | 0.90 |" in md
    assert "| seq2seq_transformer | sort | transformer_seq2seq | 99.0% | 99.5% | 6.50 |" in md
    assert "| mnist1d_transformer | 90.0% |" in md and "| mnist1d_transformer_local | 85.0% |" in md
    assert "attention variants" in md
