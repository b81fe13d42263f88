"""Synthetic sequence-to-sequence data, generated from the prepare seed (no torch, no Lightning).

Token ids: PAD=0, BOS=1, EOS=2, symbols from 3. A source is a variable-length row of symbols padded with
PAD; its target is BOS + f(source) + EOS, padded. Tasks: ``sort`` (the symbols in ascending order),
``reverse``. Splits: train/val/test draw lengths from ``train_lengths``; ``long`` draws every length up to
``max_len`` (>= 2x the longest training length) for the length-generalisation curve. No val/test/long
sequence occurs in train (nor in an earlier split).
"""

from __future__ import annotations

import numpy as np

PAD, BOS, EOS = 0, 1, 2
SPECIALS = 3
SPLITS = ("train", "val", "test", "long")
TASKS = {"sort": np.sort, "reverse": lambda s: s[::-1]}


def make_seq2seq(seed: int, task: str = "sort", symbols: int = 16, train_lengths: tuple[int, int] = (4, 10),
                 max_len: int = 20, sizes: dict[str, int] | None = None, per_length: int = 100) -> dict[str, np.ndarray]:
    """Arrays ``src_<split>`` (N, max_len) and ``tgt_<split>`` (N, max_len + 2), int64, for every split."""
    sizes = sizes or {"train": 8000, "val": 500, "test": 1000}
    rng = np.random.default_rng(seed)
    seen: set[bytes] = set()
    out: dict[str, np.ndarray] = {}

    def draw(lengths: list[int]) -> tuple[np.ndarray, np.ndarray]:
        src = np.full((len(lengths), max_len), PAD, dtype=np.int64)
        tgt = np.full((len(lengths), max_len + 2), PAD, dtype=np.int64)
        for i, n in enumerate(lengths):
            while True:  # redraw until unseen: held-out sequences never occur in an earlier split
                s = rng.integers(SPECIALS, SPECIALS + symbols, size=n)
                if s.tobytes() not in seen:
                    break
            seen.add(s.tobytes())
            src[i, :n] = s
            tgt[i, 0], tgt[i, 1:n + 1], tgt[i, n + 1] = BOS, TASKS[task](s), EOS
        return src, tgt

    lo, hi = train_lengths
    for split in ("train", "val", "test"):  # train first, so the others exclude its sequences
        out[f"src_{split}"], out[f"tgt_{split}"] = draw(list(rng.integers(lo, hi + 1, size=sizes[split])))
    # lengths 1-2 have only 16-256 distinct sequences, mostly in train already: drawn by rejection they
    # would repeat forever, so the long split starts where enough unseen sequences exist.
    start = next(n for n in range(1, max_len + 1) if symbols ** n >= 4 * (per_length + sizes["train"]))
    out["src_long"], out["tgt_long"] = draw([n for n in range(start, max_len + 1) for _ in range(per_length)])
    return out


