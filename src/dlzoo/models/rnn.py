"""Recurrent classifiers for sequences such as MNIST-1D: tanh RNN, LSTM and GRU, each uni- or bidirectional.

A (B, C, L) signal is read as L time steps of C features. The class comes from the last hidden state
(both directions' final states for a bidirectional net), as in the lecture's many-to-one RNN.
"""

from __future__ import annotations

import torch
from torch import nn

from dlzoo.models.registry import register_model

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RNNClassifier(nn.Module):
    def __init__(self, in_chans: int, num_classes: int, cell: str = "gru", hidden: int = 128, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0):
        super().__init__()
        kwargs = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        self.rnn = CELLS[cell](in_chans, hidden, num_layers, batch_first=True, bidirectional=bidirectional,
                               dropout=dropout if num_layers > 1 else 0.0, **kwargs)
        self.directions = 2 if bidirectional else 1
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.directions * hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, L)
        _, h = self.rnn(x.transpose(1, 2))  # h: (layers * dirs, B, H); LSTM returns (h, c)
        h = h[0] if isinstance(h, tuple) else h
        last = torch.cat(list(h[-self.directions:]), dim=-1)  # (B, dirs * H): top layer, every direction
        return self.head(last)


def _rnn(cell: str, input_shape, num_classes, hidden, num_layers, bidirectional, dropout) -> RNNClassifier:
    if len(input_shape) != 2:
        from dlzoo.errors import ConfigError

        raise ConfigError(f"{cell} classifiers take (C, L) sequences, got inputs of shape {tuple(input_shape)}: "
                          "use data=mnist1d")
    return RNNClassifier(input_shape[0], num_classes, cell, hidden, num_layers, bidirectional, dropout)


@register_model()
def rnn(input_shape, num_classes, hidden=128, num_layers=1, bidirectional=False, dropout=0.0) -> RNNClassifier:
    """Elman RNN with tanh: h_t = tanh(W x_t + U h_{t-1} + b)."""
    return _rnn("rnn", input_shape, num_classes, hidden, num_layers, bidirectional, dropout)


@register_model()
def lstm(input_shape, num_classes, hidden=128, num_layers=1, bidirectional=False, dropout=0.0) -> RNNClassifier:
    return _rnn("lstm", input_shape, num_classes, hidden, num_layers, bidirectional, dropout)


@register_model()
def gru(input_shape, num_classes, hidden=128, num_layers=1, bidirectional=False, dropout=0.0) -> RNNClassifier:
    return _rnn("gru", input_shape, num_classes, hidden, num_layers, bidirectional, dropout)
