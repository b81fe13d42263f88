"""Encoder-decoder models over token ids, and their decoding (greedy, beam search, non-autoregressive).

Both models expose the same two calls, so one decoder loop serves both:
``encode(src) -> enc`` (a tuple of batch-first tensors) and ``decode(tgt_in, enc) -> logits (B, T, V)``;
``forward(src, tgt_in)`` is teacher forcing. ``input_shape`` is (max source length,) and ``num_classes``
the vocabulary size; token 0 is PAD, 1 BOS, 2 EOS (dlzoo.data.seq2seq).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dlzoo.data.synthetic import BOS, EOS, PAD
from dlzoo.models.attention import AdditiveScore, DotScore
from dlzoo.models.registry import register_model
from dlzoo.models.rnn import recur
from dlzoo.models.transformer import positions

Enc = tuple[torch.Tensor, ...]
# the LSTM decoder's attention scores besides Luong's "general" h^T W s: module(hidden) -> score(dec, memory)
LSTM_SCORES = {"general": None, "dot": lambda hidden: DotScore(),
               "additive": lambda hidden: AdditiveScore(hidden, hidden, hidden)}


@contextmanager
def fastpath_off_under_autocast(device_type: str):
    """nn.Transformer's fused inference path checks only CUDA's autocast (``torch.is_autocast_enabled()``):
    under the CPU's (or MPS's) autocast it would take bfloat16 activations into float32 weights and fail.
    Switched off there for the duration of the call; CUDA's autocast and full precision keep it."""
    if not (torch.is_autocast_enabled(device_type) and torch.backends.mha.get_fastpath_enabled()):
        yield
        return
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(True)


class TransformerSeq2Seq(nn.Module):
    """Transformer encoder-decoder: post-norm blocks (self-attention, Add & LayerNorm, FFN) in the encoder;
    masked self-attention, cross-attention to the encoder output, FFN in the decoder. Token embeddings are
    scaled by sqrt(d) and shared between source, target and the output projection (as in the paper)."""

    def __init__(self, vocab: int, d_model: int = 64, nhead: int = 4, num_layers: int = 2,
                 dim_feedforward: int = 256, dropout: float = 0.1, positions_kind: str = "sinusoidal",
                 max_len: int = 64):
        super().__init__()
        self.d_model = d_model
        self.embed = nn.Embedding(vocab, d_model, padding_idx=PAD)
        self.pos = positions(positions_kind, d_model, max_len)
        self.transformer = nn.Transformer(d_model, nhead, num_layers, num_layers, dim_feedforward, dropout,
                                          batch_first=True)
        self.out = nn.Linear(d_model, vocab, bias=False)
        self.out.weight = self.embed.weight  # tied

    def _tokens(self, ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, d)
        return self.pos(self.embed(ids) * self.d_model ** 0.5)

    def encode(self, src: torch.Tensor) -> Enc:
        src_pad = src == PAD  # (B, S), True where attention must not look
        with fastpath_off_under_autocast(src.device.type):
            memory = self.transformer.encoder(self._tokens(src), src_key_padding_mask=src_pad)  # (B, S, d)
        return memory, src_pad

    def decode(self, tgt_in: torch.Tensor, enc: Enc) -> torch.Tensor:
        memory, src_pad = enc
        t = tgt_in.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=tgt_in.device)  # (T, T), -inf above diag
        with fastpath_off_under_autocast(tgt_in.device.type):
            h = self.transformer.decoder(self._tokens(tgt_in), memory, tgt_mask=causal, tgt_is_causal=True,
                                         memory_key_padding_mask=src_pad)  # (B, T, d)
        return self.out(h)  # (B, T, V)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.decode(tgt_in, self.encode(src))


class NATransformerSeq2Seq(TransformerSeq2Seq):
    """Non-autoregressive Transformer (Gu et al. 2018): the encoder above, a length classifier on the mean of its
    output, and a decoder that emits every output position in one pass -- no causal mask, no previous tokens.
    Its inputs are the source embeddings copied uniformly onto the output positions (target position j reads
    source token floor(j * S / N) for S source tokens and N output positions), plus positions. They are not
    scaled by sqrt(d) as the encoder's are: scaled, they drowned the positions that a decoder without previous
    tokens depends on (reversing 4-10 tokens, d_model 64, 400 steps of 64: token loss 1.9 scaled, 1.1 unscaled).
    Departure from the paper: one length classifier instead of per-token fertilities (the lecture's "a
    classifier decides the output length"); it classifies the difference between the output and the source
    length, from -max_len/2 to +max_len/2, as Lee et al. (2018) do. ``encode`` also returns the source ids
    (for the copy); ``decode_all`` replaces ``decode``; decoding is ``nat_decode``."""

    non_autoregressive = True

    def __init__(self, vocab: int, *args, max_len: int = 64, **kwargs):
        super().__init__(vocab, *args, max_len=max_len, **kwargs)
        self.max_offset = max_len // 2
        self.length_head = nn.Linear(self.d_model, 2 * self.max_offset + 1)  # classes: N - S = -max_offset..max_offset

    def encode(self, src: torch.Tensor) -> Enc:
        return (*super().encode(src), src)

    def decode(self, tgt_in: torch.Tensor, enc: Enc) -> torch.Tensor:
        raise TypeError("nat_seq2seq emits all positions at once: use decode_all / nat_decode, not step-wise decoding")

    def length_logits(self, enc: Enc) -> torch.Tensor:  # -> (B, 2 max_offset + 1): logits of N - S
        memory, src_pad, _ = enc
        keep = (~src_pad).unsqueeze(-1).float()  # (B, S, 1)
        return self.length_head((memory * keep).sum(1) / keep.sum(1).clamp(min=1))

    def length_loss(self, enc: Enc, n_out: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the length classifier against the true numbers of output positions ``n_out`` (B,)."""
        offset = (n_out - (~enc[1]).sum(1)).clamp(-self.max_offset, self.max_offset) + self.max_offset
        return nn.functional.cross_entropy(self.length_logits(enc), offset)

    def predict_length(self, enc: Enc) -> torch.Tensor:
        """The number of output positions N (tokens + EOS) per row: (B,)."""
        return (~enc[1]).sum(1) + self.length_logits(enc).argmax(-1) - self.max_offset

    def decode_all(self, enc: Enc, n_out: torch.Tensor, t: int) -> torch.Tensor:
        """Logits (B, t, V) of every output position at once; row b has ``n_out[b]`` positions (the rest PAD)."""
        memory, src_pad, src = enc
        src_len = (~src_pad).sum(1, keepdim=True).clamp(min=1)  # (B, 1)
        j = torch.arange(t, device=src.device)[None]  # (1, t)
        idx = torch.minimum(j * src_len // n_out.clamp(min=1)[:, None], src_len - 1)  # (B, t): uniform copy
        inputs = self.pos(self.embed(src.gather(1, idx)))  # (B, t, d)
        h = self.transformer.decoder(inputs, memory, tgt_key_padding_mask=j >= n_out[:, None],
                                     memory_key_padding_mask=src_pad)  # (B, t, d), no causal mask
        return self.out(h)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Logits for the positions of ``tgt_in`` (only its lengths are read: BOS + n tokens = n + 1 outputs; an EOS
        in ``tgt_in``, which a batch's shorter rows hold, is not an input)."""
        n_out = (tgt_in != PAD).sum(1) - (tgt_in == EOS).sum(1)
        return self.decode_all(self.encode(src), n_out, tgt_in.shape[1])


class LSTMSeq2Seq(nn.Module):
    """Bidirectional LSTM encoder (packed, so padding never enters the recurrence), LSTM decoder started
    from the encoder's final states, and Luong's global "general" attention: score(h_t, s) = h_t^T W s,
    output = W_o tanh(W_c [h_t; c_t]). Departure from Luong et al.: no input feeding (the attentional
    vector is not fed back to the next decoder step), which lets teacher forcing run in one LSTM call.
    ``attention`` picks the score: "general" (above), "dot" (h_t^T s) or "additive" (Bahdanau's v^T tanh(W h_t + U s)).

    ``copy=True`` adds the copy mechanism of the pointer-generator (See et al. 2017): a gate g_t =
    sigmoid(w·[h_t; c_t; x_t] + b) mixes the vocabulary distribution with the attention weights scattered onto
    the source's token ids, P(w) = (1 - g_t) P_vocab(w) + g_t sum_{j: src_j = w} a_tj, so a token of the source
    can be produced even if the output layer never learned it. ``decode`` then returns log P (log-probabilities
    are logits of the same softmax). ``encode`` also returns the source ids.
    """

    def __init__(self, vocab: int, embed_dim: int = 64, hidden: int = 128, num_layers: int = 1, dropout: float = 0.1,
                 attention: str = "general", copy: bool = False):
        super().__init__()
        if attention not in LSTM_SCORES:
            from dlzoo.errors import ConfigError

            raise ConfigError(f"model.attention={attention!r}: choose one of {list(LSTM_SCORES)}")
        self.attention = attention
        self.embed = nn.Embedding(vocab, embed_dim, padding_idx=PAD)
        self.encoder = nn.LSTM(embed_dim, hidden // 2, num_layers, batch_first=True, bidirectional=True,
                               dropout=dropout if num_layers > 1 else 0.0)
        self.decoder = nn.LSTM(embed_dim, hidden, num_layers, batch_first=True,
                               dropout=dropout if num_layers > 1 else 0.0)
        self.attn = nn.Linear(hidden, hidden, bias=False) if attention == "general" else LSTM_SCORES[attention](hidden)
        self.combine = nn.Linear(2 * hidden, hidden)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab)
        self.copy_gate = nn.Linear(2 * hidden + embed_dim, 1) if copy else None

    def encode(self, src: torch.Tensor) -> Enc:
        lens = (src != PAD).sum(1).clamp(min=1)
        packed = pack_padded_sequence(self.drop(self.embed(src)), lens.cpu(), batch_first=True, enforce_sorted=False)
        out, (h, c) = recur(self.encoder, packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])  # (B, S, H)
        # (layers*2, B, H/2) -> (B, layers, H): forward and backward final states side by side
        h, c = (s.view(-1, 2, *s.shape[1:]).permute(2, 0, 1, 3).flatten(2) for s in (h, c))
        return (memory, src == PAD, h, c, src) if self.copy_gate is not None else (memory, src == PAD, h, c)

    def attend(self, tgt_in: torch.Tensor, enc: Enc) -> tuple[torch.Tensor, ...]:
        """The decoder's inputs (B, T, E), states (B, T, H), attention weights (B, T, S) and contexts (B, T, H)."""
        memory, src_pad, h, c = enc[:4]
        state = (h.transpose(0, 1).contiguous(), c.transpose(0, 1).contiguous())  # (layers, B, H)
        emb = self.drop(self.embed(tgt_in))  # (B, T, E)
        dec, _ = recur(self.decoder, emb, state)  # (B, T, H)
        if self.attention == "general":
            scores = dec @ self.attn(memory).transpose(1, 2)  # (B, T, S)
        else:
            scores = self.attn(dec, memory)  # (B, T, S)
        weights = scores.masked_fill(src_pad[:, None, :], float("-inf")).softmax(-1)
        return emb, dec, weights, weights @ memory

    def decode(self, tgt_in: torch.Tensor, enc: Enc) -> torch.Tensor:
        emb, dec, weights, context = self.attend(tgt_in, enc)
        logits = self.out(self.drop(torch.tanh(self.combine(torch.cat([dec, context], -1)))))  # (B, T, V)
        if self.copy_gate is None:
            return logits
        gate = torch.sigmoid(self.copy_gate(torch.cat([dec, context, emb], -1)))  # (B, T, 1): probability of copying
        src = enc[4]
        copied = torch.zeros_like(logits).scatter_add_(2, src[:, None, :].expand(-1, tgt_in.shape[1], -1), weights)
        probs = (1 - gate) * logits.softmax(-1) + gate * copied  # (B, T, V)
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.decode(tgt_in, self.encode(src))


@torch.no_grad()
def greedy_decode(model: nn.Module, src: torch.Tensor, max_len: int) -> torch.Tensor:
    """Feed back the argmax token until every row has emitted EOS (or max_len tokens): (B, S) -> (B, <=max_len)
    output tokens without BOS, PAD after EOS. The decoder re-reads the whole prefix each step (no KV cache:
    sequences here are short)."""
    enc = model.encode(src)
    ys = torch.full((src.shape[0], 1), BOS, dtype=torch.long, device=src.device)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        nxt = model.decode(ys, enc)[:, -1].argmax(-1)  # (B,)
        nxt = nxt.masked_fill(done, PAD)
        ys = torch.cat([ys, nxt[:, None]], 1)
        done |= nxt == EOS
        if done.all():
            break
    return ys[:, 1:]


@torch.no_grad()
def nat_decode(model: NATransformerSeq2Seq, src: torch.Tensor, max_len: int) -> torch.Tensor:
    """Non-autoregressive decoding: predict the output length N (tokens + EOS, at most ``max_len``), then all N
    positions in one decoder pass; the argmax tokens, EOS at position N-1, PAD after: (B, S) -> (B, <=max_len)."""
    enc = model.encode(src)
    n = model.predict_length(enc).clamp(1, max_len)  # (B,)
    pred = model.decode_all(enc, n, int(n.max())).argmax(-1)  # (B, N_max)
    pos = torch.arange(pred.shape[1], device=src.device)[None]
    return pred.masked_fill(pos == n[:, None] - 1, EOS).masked_fill(pos >= n[:, None], PAD)


@torch.no_grad()
def beam_search(model: nn.Module, src: torch.Tensor, max_len: int, beam: int = 4, length_penalty: float = 0.0) -> torch.Tensor:
    """Beam search: keep the ``beam`` best prefixes by summed log-probability; a prefix that emits EOS is
    finished and kept. Finished hypotheses are ranked by score / length**length_penalty (0: raw sum).
    With beam=1 this is exactly greedy decoding. Returns (B, <=max_len) tokens like ``greedy_decode``."""
    b, dev = src.shape[0], src.device
    enc = model.encode(src)
    enc = tuple(t.repeat_interleave(beam, 0) for t in enc)  # row b*beam + k is hypothesis k of sample b
    ys = torch.full((b * beam, 1), BOS, dtype=torch.long, device=dev)
    scores = torch.full((b, beam), float("-inf"), device=dev)
    scores[:, 0] = 0.0  # all beams start identical: expand only the first
    finished = torch.zeros(b * beam, dtype=torch.bool, device=dev)
    for _ in range(max_len):
        logp = model.decode(ys, enc)[:, -1].log_softmax(-1)  # (b*beam, V)
        v = logp.shape[-1]
        # a finished hypothesis continues only with PAD at no cost, so it keeps its score and one slot
        pad_only = torch.full_like(logp, float("-inf"))
        pad_only[:, PAD] = 0.0
        logp = torch.where(finished[:, None], pad_only, logp)
        total = (scores.view(-1, 1) + logp).view(b, beam * v)  # (b, beam*V)
        scores, idx = total.topk(beam, dim=-1)  # (b, beam)
        origin = (idx // v + torch.arange(b, device=dev)[:, None] * beam).view(-1)  # parent row
        tok = (idx % v).view(-1)
        ys = torch.cat([ys[origin], tok[:, None]], 1)
        finished = finished[origin] | (tok == EOS)
        if finished.all():
            break
    out = ys[:, 1:]
    if length_penalty:
        n = ((out != PAD) & (out != EOS)).sum(1).view(b, beam).clamp(min=1) + 1  # tokens incl. EOS
        scores = scores / n.float() ** length_penalty
    best = scores.argmax(-1) + torch.arange(b, device=dev) * beam
    return out[best]


def _check(input_shape) -> None:
    if len(input_shape) != 1:
        from dlzoo.errors import ConfigError

        raise ConfigError(f"seq2seq models take token sequences (S,), got inputs of shape {tuple(input_shape)}: "
                          "use data=sort with task=seq2seq")


@register_model()
def transformer_seq2seq(input_shape, num_classes, d_model=64, nhead=4, num_layers=2, dim_feedforward=256,
                        dropout=0.1, positions="sinusoidal", max_len=64) -> TransformerSeq2Seq:
    _check(input_shape)
    return TransformerSeq2Seq(num_classes, d_model, nhead, num_layers, dim_feedforward, dropout, positions, max_len)


@register_model()
def nat_seq2seq(input_shape, num_classes, d_model=64, nhead=4, num_layers=2, dim_feedforward=256, dropout=0.1,
                positions="sinusoidal", max_len=64) -> NATransformerSeq2Seq:
    _check(input_shape)
    return NATransformerSeq2Seq(num_classes, d_model, nhead, num_layers, dim_feedforward, dropout, positions,
                                max_len=max_len)


@register_model()
def lstm_seq2seq(input_shape, num_classes, embed_dim=64, hidden=128, num_layers=1, dropout=0.1,
                 attention="general", copy=False) -> LSTMSeq2Seq:
    _check(input_shape)
    return LSTMSeq2Seq(num_classes, embed_dim, hidden, num_layers, dropout, attention, copy)
