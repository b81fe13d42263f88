"""The copy mechanism (pointer-generator) of the LSTM encoder-decoder and its rare-names task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FAST, compose

from dlzoo.data.synthetic import BOS, EOS, PAD, SPECIALS, make_names
from dlzoo.models import get_model

VOCAB = 30


def _nets():
    torch.manual_seed(0)
    copy = get_model("lstm_seq2seq", input_shape=(6,), num_classes=VOCAB, embed_dim=8, hidden=16, dropout=0.0, copy=True)
    plain = get_model("lstm_seq2seq", input_shape=(6,), num_classes=VOCAB, embed_dim=8, hidden=16, dropout=0.0)
    plain.load_state_dict({k: v for k, v in copy.state_dict().items() if not k.startswith("copy_gate")})
    return copy.eval(), plain.eval()


def _force_gate(net, value: float) -> None:
    with torch.no_grad():
        net.copy_gate.weight.zero_()
        net.copy_gate.bias.fill_(100.0 if value == 1 else -100.0)  # sigmoid saturates to exactly 1 / 0 in float32


SRC = torch.tensor([[5, 7, 5, 29, 0, 0], [4, 12, 9, 6, 8, 3]])  # token 5 twice; a padded row
TGT_IN = torch.tensor([[BOS, 29, 5, 7], [BOS, 3, 8, 6]])


def test_copy_gate_one_gives_the_attention_scattered_onto_the_source_tokens():
    net, _ = _nets()
    _force_gate(net, 1)
    with torch.no_grad():
        enc = net.encode(SRC)
        probs = net.decode(TGT_IN, enc).exp()  # (B, T, V)
        weights = net.attend(TGT_IN, enc)[2]  # (B, T, S)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 4))
    for b in range(2):
        for t in range(4):
            expected = torch.zeros(VOCAB)
            for j, tok in enumerate(SRC[b].tolist()):
                if tok != PAD:
                    expected[tok] += weights[b, t, j]
            torch.testing.assert_close(probs[b, t], expected, atol=1e-6, rtol=1e-5)
    # row 0: token 5 sits at two positions, so it gets both weights; nothing outside the source gets any mass
    assert probs[0, :, 5].tolist() == pytest.approx((weights[0, :, 0] + weights[0, :, 2]).tolist(), abs=1e-6)
    assert probs[0, :, [t for t in range(VOCAB) if t not in (5, 7, 29)]].max() < 1e-30


def test_copy_gate_zero_is_the_model_without_copying():
    net, plain = _nets()
    _force_gate(net, 0)
    with torch.no_grad():
        torch.testing.assert_close(net(SRC, TGT_IN).exp(), plain(SRC, TGT_IN).softmax(-1), atol=1e-6, rtol=1e-5)


def test_names_data_hold_rare_names_half_of_them_unseen_in_training():
    d = make_names(0, symbols=16, names=400, sizes={"train": 1000, "val": 50, "test": 300}, unseen=0.5)
    first_name = SPECIALS + 16
    for split in ("train", "test"):
        src, tgt = d[f"src_{split}"], d[f"tgt_{split}"]
        assert ((src >= first_name).sum(1) == 1).all()  # one name per source
        n = (src != PAD).sum(1)
        for i in range(len(src)):
            assert tgt[i, 0] == BOS and tgt[i, n[i] + 1] == EOS
            assert (tgt[i, 1:n[i] + 1] == src[i, :n[i]][::-1]).all()
    train_names = set(d["src_train"][d["src_train"] >= first_name].tolist())
    assert max(train_names) < first_name + 200  # train draws from the first half of the names only
    test_names = d["src_test"][d["src_test"] >= first_name]
    assert 0.35 < np.mean([t not in train_names for t in test_names]) < 0.65


def test_copy_experiment_trains_and_evaluates(project):
    from dlzoo.evaluate import evaluate
    from dlzoo.train import run

    cfg = compose(["experiment=names_lstm_copy", *FAST, "trainer.max_epochs=1", "trainer.limit_train_batches=3",
                   "data.generate.sizes.train=256", "data.generate.sizes.val=32", "data.generate.sizes.test=32"])
    assert cfg.model["copy"] is True
    info = run(cfg, project / "out", [])
    assert info["status"] == "FINISHED" and "test/decode_ms" in info["test"]
    summary = evaluate(project / "out", project / "eval")  # no `long` split here: no length curve
    assert summary["dataset"] == "names" and "test/acc" in summary and not any(k.startswith("long/") for k in summary)


def test_copy_claim_runs_and_judges_copying_against_generating(project):
    import json

    from conftest import run_cli

    r = run_cli(["-m", "dlzoo.claims", "copy_mechanism", "--seeds", "0", *[x for f in FAST for x in ("-o", f)],
                 "-o", "data.generate.sizes.train=256", "-o", "data.generate.sizes.val=64", "-o", "trainer.max_epochs=1",
                 "-o", "trainer.limit_train_batches=4"], project, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads((project / "metrics-claims" / "copy_mechanism.json").read_text())
    v = result["variants"]
    assert set(v) == {"generate_only", "copy"} and all("val/token_acc" in x["0"] for x in v.values())
    check = result["checks"][0]
    assert check["values"]["0"] == pytest.approx(v["copy"]["0"]["val/acc"] - v["generate_only"]["0"]["val/acc"])
