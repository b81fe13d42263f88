"""Synthetic data generated from the prepare seed (no torch, no Lightning): sequence-to-sequence token
tasks, and the 2-D ring of 8 Gaussians (the standard GAN mode-collapse test, see ``make_ring`` below).

Token ids: PAD=0, BOS=1, EOS=2, symbols from 3. A source is a variable-length row of symbols padded with
PAD; its target is BOS + f(source) + EOS, padded. Tasks: ``sort`` (the symbols in ascending order),
``reverse``. Splits: train/val/test draw lengths from ``train_lengths``; ``long`` draws every length up to
``max_len`` (>= 2x the longest training length) for the length-generalisation curve. No val/test/long
sequence occurs in train (nor in an earlier split). ``make_names`` is a copy task with rare tokens (made in
memory by the datamodule).
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



def make_names(seed: int, symbols: int = 16, names: int = 2000, lengths: tuple[int, int] = (3, 7),
               sizes: dict[str, int] | None = None, unseen: float = 0.5) -> dict[str, np.ndarray]:
    """A copy task with rare tokens: a source is ``lengths`` common symbols with one "name" inserted at a random
    position; its target is BOS + the source reversed + EOS. Names are ``names`` rare token ids after the
    symbols: train draws them from the first (1 - ``unseen``) share of them (a few occurrences each), val and
    test from all of them, so about ``unseen`` of their names never occur in training and can only be copied.
    Arrays ``src_<split>`` (N, max_len + 1) and ``tgt_<split>`` (N, max_len + 3) for train/val/test."""
    sizes = sizes or {"train": 6000, "val": 500, "test": 1000}
    rng = np.random.default_rng(seed)
    lo, hi = lengths
    first_name = SPECIALS + symbols
    out: dict[str, np.ndarray] = {}
    for split, n in sizes.items():
        pool = names if split != "train" else max(1, round(names * (1 - unseen)))
        src = np.full((n, hi + 1), PAD, dtype=np.int64)
        tgt = np.full((n, hi + 3), PAD, dtype=np.int64)
        for i, k in enumerate(rng.integers(lo, hi + 1, size=n)):
            s = rng.integers(SPECIALS, first_name, size=k)
            s = np.insert(s, rng.integers(0, k + 1), first_name + rng.integers(0, pool))
            src[i, :k + 1] = s
            tgt[i, 0], tgt[i, 1:k + 2], tgt[i, k + 2] = BOS, s[::-1], EOS
        out[f"src_{split}"], out[f"tgt_{split}"] = src, tgt
    return out



# The ring of Gaussians (Metz et al. 2017, "Unrolled GANs"; VEEGAN): 8 modes evenly spaced on a circle of
# radius 2, each an isotropic Gaussian of std 0.02. A sample is "high quality" within 3 std of a mode.
RING_MODES, RING_RADIUS, RING_STD = 8, 2.0, 0.02


def ring_centers(modes: int = RING_MODES, radius: float = RING_RADIUS) -> np.ndarray:
    angles = 2 * np.pi * np.arange(modes) / modes
    return (radius * np.stack([np.cos(angles), np.sin(angles)], 1)).astype(np.float32)  # (modes, 2)


def make_ring(seed: int, sizes: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Arrays ``x_<split>`` (N, 2) float32 points and ``y_<split>`` (N,) int64 mode ids, modes equally likely."""
    sizes = sizes or {"train": 20000, "val": 2000, "test": 2000}
    rng = np.random.default_rng(seed)
    centers = ring_centers()
    out: dict[str, np.ndarray] = {}
    for split, n in sizes.items():
        y = rng.integers(0, len(centers), size=n)
        out[f"x_{split}"] = (centers[y] + RING_STD * rng.standard_normal((n, 2))).astype(np.float32)
        out[f"y_{split}"] = y.astype(np.int64)
    return out
