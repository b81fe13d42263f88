"""Attention scores and a multi-head attention layer with the lecture's options.

Scores (Hung-yi Lee's notes, self-attention): ``dot``, q·k / sqrt(d) (Vaswani et al. 2017), and ``additive``,
v·tanh(q + k) (Bahdanau et al. 2015: the query and the key are projected, added, passed through tanh and
reduced by a learned vector). ``window`` w > 0 is truncated (local) self-attention: position i attends only to
positions i-w..i+w. It is computed on the (2w+1) keys of each query only, so time and memory grow linearly
with the length T instead of as T**2; a full (T, T) score matrix is never built.

torch's ``nn.MultiheadAttention`` has neither additive scores nor banded attention (a mask would hide the
far positions but still compute them), hence this layer. It takes the same call as ``nn.MultiheadAttention``
inside ``nn.TransformerEncoderLayer`` (``self_attn(x, x, x, attn_mask=, key_padding_mask=, need_weights=)``),
so it drops into those layers.
"""

from __future__ import annotations

import torch
from torch import nn

SCORES = ("dot", "additive")


def check_attention(score: str, window: int | None) -> None:
    from dlzoo.errors import ConfigError

    if score not in SCORES:
        raise ConfigError(f"model.attention={score!r}: choose one of {list(SCORES)}")
    if window is not None and (not isinstance(window, int) or window < 1):
        raise ConfigError(f"model.attention_window={window!r}: must be null (full attention) or an integer >= 1")


def additive_scores(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """v·tanh(q_i + k_j): q (..., T, d), k (..., S, d), v broadcasts to (..., T, S, d). Returns (..., T, S)."""
    return (torch.tanh(q.unsqueeze(-2) + k.unsqueeze(-3)) * v).sum(-1)


class AdditiveScore(nn.Module):
    """Bahdanau's score for an RNN decoder: score(h_t, s_j) = v·tanh(W h_t + U s_j)."""

    def __init__(self, query_dim: int, key_dim: int, hidden: int):
        super().__init__()
        self.w, self.u = nn.Linear(query_dim, hidden, bias=False), nn.Linear(key_dim, hidden, bias=True)
        self.v = nn.Parameter(torch.randn(hidden) / hidden ** 0.5)

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:  # (B, T, dq), (B, S, dk) -> (B, T, S)
        return additive_scores(self.w(query), self.u(keys), self.v)


class DotScore(nn.Module):
    """Luong's ``dot`` score h_t·s_j (no parameters)."""

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return query @ keys.transpose(1, 2)


def windows(x: torch.Tensor, w: int, fill: float | bool = 0.0) -> torch.Tensor:
    """The 2w+1 neighbours of every position: (..., T, d) -> (..., T, 2w+1, d) (a view of the padded input);
    row i holds positions i-w..i+w, ``fill`` beyond the ends."""
    padded = nn.functional.pad(x, (0, 0, w, w), value=fill)  # (..., T+2w, d)
    return padded.unfold(-2, 2 * w + 1, 1).transpose(-1, -2)  # a view: no (T, T) tensor


class MultiHeadAttention(nn.Module):
    """Multi-head attention with ``score`` "dot" or "additive" and an optional local ``window`` (self-attention
    only). ``global_first``: the first position (a [CLS] token) attends to every position and every position
    attends to it, besides its window (Longformer's global attention), so a classifier's readout still sees
    the whole sequence."""

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0, score: str = "dot", window: int | None = None,
                 global_first: bool = False):
        super().__init__()
        check_attention(score, window)
        self.nhead, self.d_head, self.score = nhead, d_model // nhead, score
        self.window, self.global_first = window, global_first
        # read by nn.TransformerEncoder(Layer)'s fused fast-path checks: batch-first, and no packed q/k/v
        # projection, which keeps that path (written for nn.MultiheadAttention) off
        self.batch_first, self._qkv_same_embed_dim = True, False
        self.q, self.k, self.v = (nn.Linear(d_model, d_model) for _ in range(3))
        self.out_proj = nn.Linear(d_model, d_model)
        self.drop = nn.Dropout(dropout)
        if score == "additive":
            self.score_v = nn.Parameter(torch.randn(nhead, 1, 1, self.d_head) / self.d_head ** 0.5)  # one v per head

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, H, T, d_head)
        return x.view(x.shape[0], x.shape[1], self.nhead, self.d_head).transpose(1, 2)

    def scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """q (B, H, T, dh), k (B, H, S, dh) -> (B, H, T, S)."""
        if self.score == "additive":
            return additive_scores(q, k, self.score_v)  # score_v (H, 1, 1, dh) broadcasts over B, T and S
        return q @ k.transpose(-1, -2) / self.d_head ** 0.5

    def forward(self, query, key, value, key_padding_mask=None, need_weights=False, attn_mask=None, is_causal=False,
                **_):
        """(B, T, d) -> ((B, T, d), None). ``key_padding_mask`` (B, S): True where a key is padding; ``attn_mask``
        (T, S) bool (True = hidden) or float (added), full attention only."""
        q, k, v = self._heads(self.q(query)), self._heads(self.k(key)), self._heads(self.v(value))
        if self.window is None:
            out = self._full(q, k, v, key_padding_mask, attn_mask)
        else:
            if attn_mask is not None or query.shape[1] != key.shape[1]:
                raise ValueError("local attention is self-attention without attn_mask")
            out = self._local(q, k, v, key_padding_mask)
        b, _, t, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, t, -1)), None

    def _full(self, q, k, v, key_padding_mask, attn_mask) -> torch.Tensor:
        s = self.scores(q, k)  # (B, H, T, S)
        if attn_mask is not None:
            s = s.masked_fill(attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else s + attn_mask
        if key_padding_mask is not None:
            s = s.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        return self.drop(s.softmax(-1)) @ v  # (B, H, T, dh)

    def pair_scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """The score of query i against key i only: q (B, H, T, dh), k broadcastable to it -> (B, H, T)."""
        if self.score == "additive":
            return (torch.tanh(q + k) * self.score_v[:, 0]).sum(-1)
        return (q * k).sum(-1) / self.d_head ** 0.5

    def _local(self, q, k, v, key_padding_mask) -> torch.Tensor:
        # one (B, H, T) score per offset -w..w against shifted views of the padded keys: nothing of size
        # T x (2w+1) x d_head is copied, so the memory autograd keeps is O(T (2w+1) + T d_head) per head
        w, (b, _, t, _) = self.window, q.shape
        hidden = key_padding_mask if key_padding_mask is not None else q.new_zeros(b, t, dtype=torch.bool)
        hidden = windows(hidden[:, :, None], w, fill=True)[..., 0]  # (B, T, 2w+1): padding or beyond the ends
        kp, vp = (nn.functional.pad(x, (0, 0, w, w)) for x in (k, v))  # (B, H, T+2w, dh)
        cols = [self.pair_scores(q, kp[:, :, o:o + t]) for o in range(2 * w + 1)]  # column o: position i-w+o
        vals = [vp[:, :, o:o + t] for o in range(2 * w + 1)]
        if self.global_first:  # key 0 joins every window (once: masked where it is already inside)
            idx = torch.arange(t, device=q.device)[:, None] + torch.arange(-w, w + 1, device=q.device)  # (T, 2w+1)
            first = hidden.new_zeros(b, 1) if key_padding_mask is None else key_padding_mask[:, :1]
            hidden = torch.cat([first[:, None, :].expand(b, t, 1), hidden | (idx == 0)], -1)  # (B, T, 1 + 2w+1)
            cols.insert(0, self.pair_scores(q, k[:, :, :1]))
            vals.insert(0, v[:, :, :1])
        s = torch.stack(cols, -1).masked_fill(hidden[:, None], float("-inf"))  # (B, H, T, W)
        a = self.drop(s.softmax(-1))
        out = sum(a[..., j, None] * val for j, val in enumerate(vals))  # (B, H, T, dh)
        if self.global_first:  # the first query attends to the whole sequence
            out = torch.cat([self._full(q[:, :, :1], k, v, key_padding_mask, None), out[:, :, 1:]], 2)
        return out
