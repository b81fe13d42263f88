"""Transformer encoder classifier (Vaswani et al. 2017, encoder side) for sequences such as MNIST-1D.

Blocks are ``nn.TransformerEncoderLayer``: multi-head self-attention, Add & LayerNorm, position-wise FFN,
Add & LayerNorm (post-norm, as in the paper and the lecture). Positions come from the paper's sinusoidal
encoding or, with ``positions="learned"``, from a learned embedding table. A (B, C, L) signal is cut into
non-overlapping patches of ``patch`` samples, each embedded linearly into one token (``patch=1``: one
token per sample); the class is read from a prepended [CLS] token as in BERT/ViT. ``norm="batch"`` swaps every
LayerNorm for BatchNorm over the tokens' features (the lecture-claims suite's LayerNorm-vs-BatchNorm comparison).
``attention="additive"`` scores with v·tanh(q + k) instead of the scaled dot product; ``attention_window=w`` makes
self-attention local (truncated): each token attends to the w tokens either side, the [CLS] token to all
(dlzoo.models.attention).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlzoo.models.attention import MultiHeadAttention, check_attention
from dlzoo.models.registry import register_model


class SinusoidalPositions(nn.Module):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)); added to the tokens.

    torch has no positional-encoding module, hence this one. The table is a buffer (not trained) and is
    built for ``max_len`` positions; longer inputs than the training ones still get well-defined codes.
    """

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]  # (max_len, 1)
        div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div[: d_model // 2])
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, d)
        return x + self.pe[: x.shape[1]]


class LearnedPositions(nn.Module):
    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        self.emb = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.emb.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, d)
        return x + self.emb.weight[: x.shape[1]]


POSITIONS: dict[str, type[nn.Module]] = {"sinusoidal": SinusoidalPositions, "learned": LearnedPositions}


def positions(kind: str, d_model: int, max_len: int) -> nn.Module:
    if kind not in POSITIONS:
        from dlzoo.errors import ConfigError

        raise ConfigError(f"model.positions={kind!r}: choose one of {sorted(POSITIONS)}")
    return POSITIONS[kind](d_model, max_len)


class TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm of (B, T, d) tokens per feature, statistics over the batch and the positions (the baseline of
    Shen et al. 2020, "PowerNorm"); running statistics in eval mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, d)
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class PostNormEncoderLayer(nn.TransformerEncoderLayer):
    """``nn.TransformerEncoderLayer`` whose ``forward`` is always the plain post-norm path: the parent's fused
    inference fast path assumes LayerNorm and ``nn.MultiheadAttention``, which the subclasses swap out."""

    def forward(self, src: torch.Tensor, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        x = self.norm1(src + self._sa_block(src, src_mask, src_key_padding_mask, is_causal=is_causal))
        return self.norm2(x + self._ff_block(x))


class BatchNormEncoderLayer(PostNormEncoderLayer):
    """Post-norm encoder layer with TokenBatchNorm for its two norms."""

    def __init__(self, d_model: int, *args, **kwargs):
        super().__init__(d_model, *args, **kwargs)
        self.norm1, self.norm2 = TokenBatchNorm(d_model), TokenBatchNorm(d_model)


# model.norm -> (encoder layer, norm of the [CLS] feature vector (B, d) before the head)
NORMS = {"layer": (nn.TransformerEncoderLayer, nn.LayerNorm), "batch": (BatchNormEncoderLayer, nn.BatchNorm1d)}


def encoder_layer(layer_cls: type, d_model: int, nhead: int, dim_feedforward: int, dropout: float, activation: str,
                  attention: str = "dot", window: int | None = None) -> nn.TransformerEncoderLayer:
    """An encoder layer; with additive scores or a local window its self-attention is dlzoo's
    MultiHeadAttention (the [CLS] token at position 0 stays global) and it runs the plain post-norm path."""
    check_attention(attention, window)
    if attention == "dot" and window is None:
        return layer_cls(d_model, nhead, dim_feedforward, dropout, activation=activation, batch_first=True)
    if layer_cls is nn.TransformerEncoderLayer:
        layer_cls = PostNormEncoderLayer
    layer = layer_cls(d_model, nhead, dim_feedforward, dropout, activation=activation, batch_first=True)
    layer.self_attn = MultiHeadAttention(d_model, nhead, dropout, attention, window, global_first=True)
    return layer


class TransformerClassifier(nn.Module):
    def __init__(self, in_chans: int, seq_len: int, num_classes: int, d_model: int = 64, nhead: int = 4,
                 num_layers: int = 2, dim_feedforward: int = 128, dropout: float = 0.1, patch: int = 1,
                 positions_kind: str = "sinusoidal", activation: str = "relu", norm: str = "layer",
                 attention: str = "dot", attention_window: int | None = None):
        super().__init__()
        if norm not in NORMS:
            from dlzoo.errors import ConfigError

            raise ConfigError(f"model.norm={norm!r}: choose one of {sorted(NORMS)}")
        layer_cls, norm_cls = NORMS[norm]
        self.embed = nn.Conv1d(in_chans, d_model, kernel_size=patch, stride=patch)  # linear patch embedding
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        self.pos = positions(positions_kind, d_model, seq_len // patch + 1)
        layer = encoder_layer(layer_cls, d_model, nhead, dim_feedforward, dropout, activation, attention, attention_window)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(norm_cls(d_model), nn.Linear(d_model, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, L)
        tokens = self.embed(x).transpose(1, 2)  # (B, L/patch, d)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1)  # (B, 1 + L/patch, d)
        h = self.encoder(self.pos(tokens))  # (B, 1 + L/patch, d)
        return self.head(h[:, 0])  # (B, num_classes), from [CLS]


@register_model()
def transformer(input_shape, num_classes, d_model=64, nhead=4, num_layers=2, dim_feedforward=128, dropout=0.1,
                patch=1, positions="sinusoidal", activation="relu", norm="layer", attention="dot",
                attention_window=None) -> TransformerClassifier:
    if len(input_shape) != 2 or input_shape[1] % patch:
        from dlzoo.errors import ConfigError

        raise ConfigError(f"transformer takes (C, L) sequences with L divisible by model.patch={patch}, got inputs "
                          f"of shape {tuple(input_shape)}: use data=mnist1d")
    return TransformerClassifier(input_shape[0], input_shape[1], num_classes, d_model, nhead, num_layers,
                                 dim_feedforward, dropout, patch, positions, activation, norm, attention,
                                 attention_window)
