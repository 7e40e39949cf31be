"""Random sequences addressed by sample index, so that chunked generation equals one big call.

Samples are drawn in fixed blocks; block b of a stream comes from its own generator seeded by
SeedSequence(seed, spawn_key=(*key, b)). Whatever chunks a caller asks for, sample k always gets
the same value, and streams with different keys are independent.
"""

from __future__ import annotations

import numpy as np

BLOCK = 4096


class IndexedNormal:
    """Standard-normal (dim,) vectors, one per sample index k ≥ 0."""

    def __init__(self, seed: int, key: tuple[int, ...], dim: int = 3) -> None:
        self._seed = int(seed)
        self._key = tuple(int(k) for k in key)
        self._dim = dim
        self._cache: dict[int, np.ndarray] = {}

    def block(self, b: int) -> np.ndarray:
        """The (BLOCK, dim) draws of block b (a small cache serves streaming callers)."""
        cached = self._cache.get(b)
        if cached is None:
            ss = np.random.SeedSequence(self._seed, spawn_key=self._key + (b,))
            cached = np.random.default_rng(ss).standard_normal((BLOCK, self._dim))
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[b] = cached
        return cached

    def take(self, k0: int, k1: int) -> np.ndarray:
        """Draws for sample indices k0 ≤ k < k1."""
        out = np.empty((max(k1 - k0, 0), self._dim))
        k = k0
        while k < k1:
            b, off = divmod(k, BLOCK)
            n = min(BLOCK - off, k1 - k)
            out[k - k0 : k - k0 + n] = self.block(b)[off : off + n]
            k += n
        return out


class IndexedRandomWalk:
    """Random walk w_k = Σ_{j ≤ k} n_j of an `IndexedNormal`; block start sums are memoised."""

    def __init__(self, steps: IndexedNormal) -> None:
        self._steps = steps
        self._block_start: list[np.ndarray] = [np.zeros(steps.take(0, 1).shape[1])]
        self._walk_cache: dict[int, np.ndarray] = {}

    def _start_of(self, b: int) -> np.ndarray:
        while len(self._block_start) <= b:
            i = len(self._block_start) - 1
            self._block_start.append(self._block_start[i] + self._steps.block(i).sum(axis=0))
        return self._block_start[b]

    def _walk_block(self, b: int) -> np.ndarray:
        # Whole-block cumulative sums: the same arithmetic whatever the caller's chunking.
        cached = self._walk_cache.get(b)
        if cached is None:
            cached = self._start_of(b) + np.cumsum(self._steps.block(b), axis=0)
            if len(self._walk_cache) >= 4:
                self._walk_cache.pop(next(iter(self._walk_cache)))
            self._walk_cache[b] = cached
        return cached

    def take(self, k0: int, k1: int) -> np.ndarray:
        """Walk values for k0 ≤ k < k1 (unit step standard deviation)."""
        if k1 <= k0:
            return np.empty((0, self._block_start[0].shape[0]))
        out = np.empty((k1 - k0, self._block_start[0].shape[0]))
        k = k0
        while k < k1:
            b, off = divmod(k, BLOCK)
            n = min(BLOCK - off, k1 - k)
            out[k - k0 : k - k0 + n] = self._walk_block(b)[off : off + n]
            k += n
        return out
