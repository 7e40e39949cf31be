"""Arrays to BLOBs and back, lossless and bit-exact.

Codecs (stored per row, so new ones can come without a migration):
- "raw": the array's little-endian bytes.
- "shuffle-zlib": the bytes regrouped by significance (all first bytes, then all second bytes...,
  as Blosc's shuffle filter does) and deflated. Sign/exponent bytes of neighbouring samples are
  nearly equal and counters and device times are almost constant steps, so this saves ~25 % on
  the simulator's float64 noise and much more on real, quantised sensor data, for ~20 µs per block.
"""

from __future__ import annotations

import zlib
from typing import Literal

import numpy as np

Codec = Literal["raw", "shuffle-zlib"]
CODECS: tuple[Codec, ...] = ("raw", "shuffle-zlib")
DEFAULT_CODEC: Codec = "shuffle-zlib"
_ZLIB_LEVEL = 6


def encode(arr: np.ndarray, dtype: str, codec: str) -> bytes:
    """`arr` as `dtype` ("<f8", "<i8", "<i4", "u1"), C order, encoded with `codec`."""
    a = np.ascontiguousarray(arr, dtype=np.dtype(dtype))
    if codec == "raw":
        return a.tobytes()
    if codec == "shuffle-zlib":
        size = a.dtype.itemsize
        b = a.view(np.uint8).reshape(-1, size).T.tobytes() if size > 1 else a.tobytes()
        return zlib.compress(b, _ZLIB_LEVEL)
    raise ValueError(f"unknown codec {codec!r}")


def decode(blob: bytes, dtype: str, codec: str, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of `encode`: a fresh, writable array of `shape` in native byte order."""
    dt = np.dtype(dtype)
    if codec == "raw":
        raw = blob
    elif codec == "shuffle-zlib":
        raw = zlib.decompress(blob)
        if dt.itemsize > 1:
            u = np.frombuffer(raw, dtype=np.uint8).reshape(dt.itemsize, -1)
            raw = u.T.tobytes()
    else:
        raise ValueError(f"unknown codec {codec!r}")
    out = np.frombuffer(raw, dtype=dt).astype(dt.newbyteorder("="), copy=True)
    return out.reshape(shape)
