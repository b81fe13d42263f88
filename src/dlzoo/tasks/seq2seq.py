"""Sequence-to-sequence task: teacher forcing in training, greedy and beam-search decoding in evaluation.

Metrics (``val/*`` per epoch, ``test/*``): ``loss`` (teacher-forced cross-entropy over non-PAD target
tokens), ``acc`` = exact-sequence accuracy of greedy decoding (the whole output, EOS included, equals the
target), ``token_acc`` = share of target tokens (EOS included) that greedy decoding reproduces at their
position; in test also ``beam_acc`` and ``beam_token_acc`` for beam search. ``train/acc`` is the
teacher-forced token accuracy. At the end of a test run on a datamodule with a ``long`` split (lengths
up to >= 2x the training lengths), ``long/acc_len_<n>`` = greedy exact-sequence accuracy of its sources
of length n, and ``long/train_len_min`` / ``long/train_len_max`` = the training lengths (the length curve).
``test/decode_ms`` = wall time of greedy (or non-autoregressive) decoding per test sequence, in milliseconds.

A non-autoregressive network (``net.non_autoregressive``, dlzoo.models.seq2seq.NATransformerSeq2Seq) is decoded
with ``nat_decode`` (one decoder pass) instead of greedy decoding, has no beam search, and trains its length
classifier beside the tokens: loss = token cross-entropy + ``length_loss_weight`` x length cross-entropy
(``train/length_loss``); ``test/length_acc`` = share of test sequences whose length it predicts exactly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torchmetrics import MeanMetric

from dlzoo.data.seq2seq import PAD, lengths
from dlzoo.models.seq2seq import beam_search, greedy_decode, nat_decode
from dlzoo.tasks.base import BuildContext, EvalOutputs, Task
from dlzoo.tasks.classify import ClassificationTask
from dlzoo.tasks.registry import register_task


def trim(tokens: torch.Tensor) -> torch.Tensor:
    """Drop the all-PAD columns at the right of a padded batch: (B, T) -> (B, longest)."""
    return tokens[:, : max(int(lengths(tokens).max()), 1)]


def sequence_scores(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row (exact match, share of correct target tokens) for decoded ``pred`` (B, P) against ``target``
    (B, T): both without BOS, PAD after EOS."""
    t = target.shape[1]
    if pred.shape[1] < t:
        pred = nn.functional.pad(pred, (0, t - pred.shape[1]), value=PAD)
    pred_t = pred[:, :t]
    real = target != PAD
    hits = (pred_t == target) & real
    extra = (pred[:, t:] != PAD).any(1) | ((pred_t != PAD) & ~real).any(1)  # tokens beyond the target's end
    exact = (hits.sum(1) == real.sum(1)) & ~extra
    return exact.float(), hits.sum(1) / real.sum(1).clamp(min=1)


@register_task("seq2seq")
class Seq2SeqTask(Task, pl.LightningModule):
    """``net`` has ``encode``/``decode``/``forward(src, tgt_in)`` (dlzoo.models.seq2seq).

    ``scheduled_sampling`` p > 0 (Bengio et al. 2015) feeds the model its own predictions instead of the
    gold previous tokens with a probability that ramps linearly from 0 to p over the training epochs.
    Departure from the paper: predictions come from a teacher-forced first pass without gradient, then the
    mixed input gets a second pass (the parallel two-pass variant of Mihaylova & Martins 2019), because a
    Transformer decoder does not step through time in training.
    """

    # the figure a run of this task is ranked and reported by: exact-match share of decoded sequences
    score_key = "test/acc"
    registers = True
    datamodule = "seq2seq"

    @classmethod
    def from_config(cls, cfg, net: nn.Module, num_classes: int, context: BuildContext):
        from dlzoo.tasks.options import label_smoothing, optimizer_kwargs, section

        return cls(net, **optimizer_kwargs(cfg), label_smoothing=label_smoothing(cfg), **section(cfg, "seq2seq"))

    @staticmethod
    def example_input(net: nn.Module, input_shape: tuple[int, ...]) -> tuple:
        """forward(src, tgt_in): token ids of the input length."""
        return (torch.ones(1, *input_shape, dtype=torch.long),) * 2

    def __init__(self, net: nn.Module, optimizer: Callable, scheduler: Callable | None = None,
                 scheduler_interval: str = "epoch", weight_decay: float = 0.0, label_smoothing: float = 0.0,
                 beam_size: int = 4, length_penalty: float = 0.0, scheduled_sampling: float = 0.0,
                 max_extra_len: int = 2, length_loss_weight: float = 1.0):
        super().__init__()
        self.nat = getattr(net, "non_autoregressive", False)
        if self.nat and scheduled_sampling:
            from dlzoo.errors import ConfigError

            raise ConfigError("seq2seq.scheduled_sampling must be 0 for a non-autoregressive model: its decoder "
                              "reads no previous tokens")
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.loss_fn = nn.CrossEntropyLoss(ignore_index=PAD, label_smoothing=label_smoothing)
        self.train_acc = MeanMetric()
        names = ("val/acc", "val/token_acc", "test/acc", "test/token_acc", "test/beam_acc", "test/beam_token_acc",
                 "test/decode_ms", "test/length_acc")
        self.scores = nn.ModuleDict({n.replace("/", "_"): MeanMetric() for n in names})

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.net(src, tgt_in)

    def sampling_prob(self) -> float:
        p = self.hparams.scheduled_sampling
        if not p or self.trainer is None or not self.trainer.max_epochs or self.trainer.max_epochs < 2:
            return p
        return p * self.current_epoch / (self.trainer.max_epochs - 1)

    def _teacher_forced(self, src, tgt, stage: str = "train"):
        src, tgt = trim(src), trim(tgt)
        tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]  # (B, T-1) each: BOS y1..yn -> y1..yn EOS
        p = self.sampling_prob() if self.training else 0.0
        if p > 0:
            with torch.no_grad():
                pred = self.net(src, tgt_in).argmax(-1)  # (B, T-1): prediction of token t+1
            swap = (torch.rand(tgt_in.shape, device=tgt_in.device) < p) & (tgt_in != PAD)
            swap[:, 0] = False  # BOS stays
            mixed = tgt_in.clone()
            mixed[:, 1:] = torch.where(swap[:, 1:], pred[:, :-1], tgt_in[:, 1:])
            tgt_in = mixed
        if self.nat:
            return self._nat_loss(src, tgt_in, tgt_out, stage)
        logits = self.net(src, tgt_in)  # (B, T-1, V)
        loss = self.loss_fn(logits.flatten(0, 1), tgt_out.flatten())
        return loss, logits, tgt_out

    def _nat_loss(self, src, tgt_in, tgt_out, stage: str):
        """Token loss of all positions at once, plus the length classifier's loss on the true output length."""
        enc = self.net.encode(src)
        n_out = lengths(tgt_out)  # n tokens + EOS output positions
        logits = self.net.decode_all(enc, n_out, tgt_in.shape[1])  # (B, T-1, V)
        length_loss = self.net.length_loss(enc, n_out)
        self.log(f"{stage}/length_loss", length_loss, on_step=False, on_epoch=True)
        loss = self.loss_fn(logits.flatten(0, 1), tgt_out.flatten()) + self.hparams.length_loss_weight * length_loss
        return loss, logits, tgt_out

    def training_step(self, batch, batch_idx):
        loss, logits, tgt_out = self._teacher_forced(*batch)
        real = tgt_out != PAD
        self.train_acc.update((logits.argmax(-1) == tgt_out)[real].float())
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def _max_len(self, tgt: torch.Tensor) -> int:
        return int(lengths(trim(tgt)).max()) - 1 + self.hparams.max_extra_len  # target tokens incl. EOS, + slack

    def decode(self, src: torch.Tensor, max_len: int) -> torch.Tensor:
        """The model's own decoder: greedy, or one non-autoregressive pass."""
        return (nat_decode if self.nat else greedy_decode)(self.net, src, max_len)

    def _timed_decode(self, src: torch.Tensor, max_len: int) -> torch.Tensor:
        start = time.perf_counter()
        pred = self.decode(src, max_len)
        if pred.is_cuda:
            torch.cuda.synchronize(pred.device)
        ms = 1000 * (time.perf_counter() - start) / src.shape[0]
        self.scores["test_decode_ms"].update(ms, weight=float(src.shape[0]))
        return pred

    def _score(self, prefix: str, pred: torch.Tensor, tgt: torch.Tensor) -> None:
        exact, tok = sequence_scores(pred, trim(tgt)[:, 1:])
        self.scores[f"{prefix}acc"].update(exact)
        self.scores[f"{prefix}token_acc"].update(tok)

    def validation_step(self, batch, batch_idx):
        src, tgt = batch
        loss, _, _ = self._teacher_forced(src, tgt, "val")
        self.log("val/loss", loss, on_epoch=True, prog_bar=True)
        self._score("val_", self.decode(trim(src), self._max_len(tgt)), tgt)
        self.log("val/acc", self.scores["val_acc"], on_epoch=True, prog_bar=True)
        self.log("val/token_acc", self.scores["val_token_acc"], on_epoch=True)

    def test_step(self, batch, batch_idx):
        src, tgt = batch
        loss, _, _ = self._teacher_forced(src, tgt, "test")
        self.log("test/loss", loss, on_epoch=True)
        max_len = self._max_len(tgt)
        pred = self._timed_decode(trim(src), max_len)
        self._score("test_", pred, tgt)
        if self.nat:
            names = ("acc", "token_acc", "decode_ms", "length_acc")
            n_pred = (pred != PAD).sum(1)  # tokens + EOS
            self.scores["test_length_acc"].update((n_pred == lengths(trim(tgt)) - 1).float())
        else:
            names = ("acc", "token_acc", "beam_acc", "beam_token_acc", "decode_ms")
            self._score("test_beam_", beam_search(self.net, trim(src), max_len, self.hparams.beam_size,
                                                  self.hparams.length_penalty), tgt)
        for name in names:
            self.log(f"test/{name}", self.scores[f"test_{name}"], on_epoch=True)

    def on_test_epoch_end(self) -> None:
        dm = self.trainer.datamodule  # None when testing on bare dataloaders
        if dm is None or "long" not in getattr(dm, "datasets", {}):
            return
        self.log_dict(self.length_figures(dm))

    def length_figures(self, dm) -> dict[str, float]:
        """The length curve on ``dm``'s ``long`` split and the training lengths it is read against."""
        train_lens = lengths(dm.datasets["train"].tensors[0])
        return {**self.length_curve(dm.loader("long")),
                "long/train_len_min": float(train_lens.min()), "long/train_len_max": float(train_lens.max())}

    @torch.no_grad()
    def length_curve(self, loader) -> dict[str, float]:
        """Greedy exact-sequence accuracy per source length: ``{"long/acc_len_<n>": acc}``, n ascending."""
        hits: dict[int, list[float]] = {}
        for src, tgt in loader:
            src, tgt = src.to(self.device), tgt.to(self.device)
            exact, _ = sequence_scores(self.decode(trim(src), self._max_len(tgt)), trim(tgt)[:, 1:])
            for n, hit in zip(lengths(src).tolist(), exact.tolist()):
                hits.setdefault(n, []).append(hit)
        return {f"long/acc_len_{n}": sum(v) / len(v) for n, v in sorted(hits.items())}

    @torch.no_grad()
    def evaluation_outputs(self, dm, loader, split: str, out_dir: Path, title: str) -> EvalOutputs:
        """Token-level (actual, predicted) pairs of the model's own decoding (greedy or non-autoregressive) on
        ``loader``, for the confusion plot, and the length curve on the datamodule's ``long`` split (the same
        ``long/*`` figures as the test run on a datamodule; JSON only)."""
        actual, predicted = [], []
        for src, tgt in loader:
            src, target = trim(src), trim(tgt)[:, 1:]  # the target without BOS
            pred = self.decode(src.to(self.device), target.shape[1] + self.hparams.max_extra_len).cpu()
            pred = torch.nn.functional.pad(pred, (0, max(0, target.shape[1] - pred.shape[1])), value=PAD)
            real = target != PAD
            actual.append(target[real].numpy())
            predicted.append(pred[:, : target.shape[1]][real].numpy())
        return EvalOutputs(np.concatenate(actual), np.concatenate(predicted),
                           extra=self.length_figures(dm) if "long" in dm.datasets else {})

    # same optimizer/scheduler wiring as classification (decay groups, partial constructors)
    configure_optimizers = ClassificationTask.configure_optimizers
