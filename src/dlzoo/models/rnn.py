"""Recurrent classifiers for sequences such as MNIST-1D: tanh RNN, LSTM and GRU, each uni- or bidirectional.

A (B, C, L) signal is read as L time steps of C features, or with ``patch`` p > 1 as L/p steps of the
C*p features of non-overlapping windows (fewer steps: faster, and gradients cross fewer steps). The class comes from the last hidden state
(both directions' final states for a bidirectional net), as in the lecture's many-to-one RNN.

``variational_dropout`` p > 0 is variational (locked) dropout (Gal & Ghahramani 2016; the "locked dropout" of
Merity et al. 2018): one dropout mask per sequence, the same at every time step, on the outputs of every
recurrent layer (between stacked layers and what the head reads): the places where ``dropout`` puts standard
dropout, which draws a new mask per step. The raw input is not dropped: with the few features per step of a
signal (1-2 for MNIST-1D) a locked mask would blank whole sequences.
"""

from __future__ import annotations

import torch
from torch import nn

from dlzoo.models.registry import register_model

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def recur(rnn: nn.Module, x, hx=None):
    """``rnn(x, hx)``, except that an ``nn.LSTM`` under the CPU's autocast runs in float32.

    CPU autocast lists the LSTM among its bfloat16 ops, but oneDNN has a bfloat16 LSTM kernel only on CPUs with
    AVX-512-BF16 or AMX; elsewhere (AVX2 CPUs) the call fails ("could not create a primitive descriptor for the
    LSTM forward propagation primitive"). Float32 everywhere keeps ``trainer.precision=bf16-mixed`` working on
    every CPU and its figure the same on each of them, as CPU autocast already does for the GRU. GPUs (CUDA's
    autocast) and full precision take the plain call."""
    data = x.data if isinstance(x, nn.utils.rnn.PackedSequence) else x
    if not (isinstance(rnn, nn.LSTM) and data.device.type == "cpu" and torch.is_autocast_enabled("cpu")):
        return rnn(x) if hx is None else rnn(x, hx)
    with torch.autocast("cpu", enabled=False):
        return rnn(x.float(), None if hx is None else tuple(h.float() for h in hx))


class LockedDropout(nn.Dropout1d):
    """Dropout with one mask per sequence shared by all time steps: (B, T, F) * mask (B, 1, F) / (1 - p).

    This is ``nn.Dropout1d`` (whole channels of (B, C, L) zeroed for every position) seen from batch-first
    sequences: features are its channels, time steps its positions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, F)
        return super().forward(x.transpose(1, 2)).transpose(1, 2) if self.p else x


class StackedRNN(nn.Module):
    """``num_layers`` one-layer recurrent modules with locked dropout between them: the call and return
    signature of a multi-layer ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (batch_first)."""

    def __init__(self, cell: type[nn.RNNBase], n_in: int, hidden: int, num_layers: int, bidirectional: bool,
                 p: float, **kwargs):
        super().__init__()
        dirs = 2 if bidirectional else 1
        self.layers = nn.ModuleList(cell(n_in if i == 0 else dirs * hidden, hidden, 1, batch_first=True,
                                         bidirectional=bidirectional, **kwargs) for i in range(num_layers))
        self.drop = LockedDropout(p)

    def forward(self, x: torch.Tensor):
        finals = []
        for i, layer in enumerate(self.layers):
            x, h = recur(layer, self.drop(x) if i else x)
            finals.append(h)
        if isinstance(finals[0], tuple):  # LSTM: (h, c), each (layers * dirs, B, H)
            return x, tuple(torch.cat([f[i] for f in finals]) for i in range(2))
        return x, torch.cat(finals)


class RNNClassifier(nn.Module):
    def __init__(self, in_chans: int, num_classes: int, cell: str = "gru", hidden: int = 128, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, patch: int = 1, readout: str = "last",
                 seq_len: int = 40, variational_dropout: float = 0.0):
        super().__init__()
        kwargs = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        self.patch = patch
        if variational_dropout:
            self.rnn = StackedRNN(CELLS[cell], in_chans * patch, hidden, num_layers, bidirectional,
                                  variational_dropout, **kwargs)
        else:
            self.rnn = CELLS[cell](in_chans * patch, hidden, num_layers, batch_first=True,
                                   bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0, **kwargs)
        self.out_drop = LockedDropout(variational_dropout)
        self.directions = 2 if bidirectional else 1
        self.readout = readout
        features = self.directions * hidden * (seq_len // patch if readout == "all" else 1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, L)
        b, c, length = x.shape
        steps = x.view(b, c, length // self.patch, self.patch).permute(0, 2, 1, 3).flatten(2)  # (B, L/p, C*p)
        out, h = recur(self.rnn, steps)  # out: (B, L/p, dirs * H); h: (layers * dirs, B, H); LSTM returns (h, c)
        if self.readout == "all":
            return self.head(self.out_drop(out).flatten(1))  # (B, L/p * dirs * H)
        h = h[0] if isinstance(h, tuple) else h
        last = torch.cat(list(h[-self.directions:]), dim=-1)  # (B, dirs * H): top layer, every direction
        return self.head(self.out_drop(last.unsqueeze(1)).squeeze(1))


def _rnn(cell: str, input_shape, num_classes, hidden, num_layers, bidirectional, dropout, patch,
         readout, variational_dropout=0.0) -> RNNClassifier:
    from dlzoo.errors import ConfigError

    if len(input_shape) != 2:
        raise ConfigError(f"{cell} classifiers take (C, L) sequences, got inputs of shape {tuple(input_shape)}: "
                          "use data=mnist1d")
    if patch < 1 or input_shape[1] % patch:
        raise ConfigError(f"model.patch={patch} must divide the sequence length {input_shape[1]}")
    if readout not in ("last", "all"):
        raise ConfigError(f"model.readout={readout!r}: choose 'last' (final hidden state) or 'all' (every step's output)")
    if not 0 <= variational_dropout < 1:
        raise ConfigError(f"variational_dropout={variational_dropout!r}: must be a number in [0, 1)")
    return RNNClassifier(input_shape[0], num_classes, cell, hidden, num_layers, bidirectional, dropout, patch, readout,
                         input_shape[1], variational_dropout)


@register_model()
def rnn(input_shape, num_classes, hidden=128, num_layers=1, bidirectional=False, dropout=0.0,
        patch=1, readout="last", variational_dropout=0.0) -> RNNClassifier:
    """Elman RNN with tanh: h_t = tanh(W x_t + U h_{t-1} + b)."""
    return _rnn("rnn", input_shape, num_classes, hidden, num_layers, bidirectional, dropout, patch, readout,
                variational_dropout)


@register_model()
def lstm(input_shape, num_classes, hidden=128, num_layers=1, bidirectional=False, dropout=0.0,
        patch=1, readout="last", variational_dropout=0.0) -> RNNClassifier:
    return _rnn("lstm", input_shape, num_classes, hidden, num_layers, bidirectional, dropout, patch, readout,
                variational_dropout)


@register_model()
def gru(input_shape, num_classes, hidden=128, num_layers=1, bidirectional=False, dropout=0.0,
        patch=1, readout="last", variational_dropout=0.0) -> RNNClassifier:
    return _rnn("gru", input_shape, num_classes, hidden, num_layers, bidirectional, dropout, patch, readout,
                variational_dropout)
