"""LSTMs under the CPU's autocast (``trainer.precision=bf16-mixed`` on a CPU): float32, on every CPU.

oneDNN's bfloat16 LSTM exists only on CPUs with AVX-512-BF16 or AMX; on AVX2 CPUs a bfloat16 LSTM call fails.
These tests hold on both kinds: under autocast the recurrent nets compute exactly what they compute without it."""

from __future__ import annotations

import pytest
import torch

from dlzoo.models import get_model


def _with_and_without_autocast(net, *inputs):
    net.eval()
    with torch.no_grad():
        plain = net(*inputs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = net(*inputs)
    return plain, mixed


@pytest.mark.parametrize("variational_dropout", [0.0, 0.2])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_classifier_runs_in_float32_under_cpu_autocast(bidirectional, variational_dropout):
    torch.manual_seed(0)
    net = get_model("lstm", input_shape=(1, 12), num_classes=3, hidden=16, num_layers=2,
                    bidirectional=bidirectional, variational_dropout=variational_dropout)
    dtypes = []
    for m in net.modules():
        if isinstance(m, torch.nn.LSTM):
            m.register_forward_hook(lambda mod, args, out: dtypes.append(out[0].dtype))
    plain, mixed = _with_and_without_autocast(net, torch.randn(4, 1, 12))
    assert dtypes and set(dtypes) == {torch.float32}  # every LSTM call, with autocast and without
    # the head is a Linear (bfloat16 under autocast): its input, the LSTM's state, is the float32 one
    assert mixed.dtype == torch.bfloat16
    torch.testing.assert_close(mixed.float(), plain, atol=0.05, rtol=0.05)


def test_lstm_seq2seq_encodes_and_decodes_in_float32_under_cpu_autocast():
    torch.manual_seed(0)
    net = get_model("lstm_seq2seq", input_shape=(7,), num_classes=12, embed_dim=8, hidden=16)
    src = torch.tensor([[3, 4, 5, 2, 0, 0, 0], [6, 7, 8, 9, 10, 2, 0]])
    tgt_in = torch.tensor([[1, 5, 4, 3], [1, 10, 9, 8]])
    net.eval()
    with torch.no_grad():
        enc = net.encode(src)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            enc_mixed = net.encode(src)
            dec_mixed = net.attend(tgt_in, enc_mixed)[1]
        dec = net.attend(tgt_in, enc)[1]
    for plain, mixed in zip(enc[:1] + enc[2:], enc_mixed[:1] + enc_mixed[2:]):  # memory, final h and c
        assert mixed.dtype == torch.float32 and torch.equal(mixed, plain)
    assert dec_mixed.dtype == torch.float32 and torch.equal(dec_mixed, dec)
