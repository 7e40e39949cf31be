"""Sample and angle blocks: many consecutive batches of one sensor in one row, and back.

A block keeps each batch's length and `gap_before` (`batch_sizes`, `batch_gaps`) and its arrival
number in the session (`arrival`), so reading returns exactly the batches that were written, in
the order they arrived. Batches go into one block only if they carry the same optional arrays
(mag, device time, counter); a block never exceeds `MAX_BLOCK_SAMPLES` so a read stays small.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np

from recordings.codec import decode, encode
from sensors.samples import SampleBatch

MAX_BLOCK_SAMPLES = 4096

SAMPLE_BLOCK_COLUMNS = ("n", "t_first", "t_last", "codec", "batch_sizes", "batch_gaps", "arrival",
                        "time_s", "device_time_s", "counter", "acc", "gyr", "mag")


def _signature(b: SampleBatch) -> tuple[bool, bool, bool]:
    return (b.mag is not None, b.device_time_s is not None, b.counter is not None)


def group_batches(batches: Sequence[tuple[SampleBatch, int]],
                  max_samples: int = MAX_BLOCK_SAMPLES) -> Iterator[list[tuple[SampleBatch, int]]]:
    """Consecutive (batch, arrival) pairs of ONE sensor cut into groups that fit one block."""
    group: list[tuple[SampleBatch, int]] = []
    n = 0
    for item in batches:
        b = item[0]
        if group and (_signature(b) != _signature(group[0][0]) or n + len(b) > max_samples):
            yield group
            group, n = [], 0
        group.append(item)
        n += len(b)
    if group:
        yield group


def _cat(arrs: list[np.ndarray | None]) -> np.ndarray | None:
    return None if arrs[0] is None else np.concatenate(arrs)  # type: ignore[arg-type]


def encode_sample_block(group: Sequence[tuple[SampleBatch, int]], codec: str) -> tuple[Any, ...]:
    """Row values in `SAMPLE_BLOCK_COLUMNS` order for batches of one sensor (same signature)."""
    bs = [b for b, _ in group]
    t = np.concatenate([b.time_s for b in bs])
    n = int(t.shape[0])

    def enc(a: np.ndarray | None, dtype: str) -> bytes | None:
        return None if a is None else encode(a, dtype, codec)

    return (
        n,
        float(t[0]) if n else None,
        float(t[-1]) if n else None,
        codec,
        encode(np.array([len(b) for b in bs]), "<i4", "raw"),
        encode(np.array([b.gap_before for b in bs]), "u1", "raw"),
        encode(np.array([a for _, a in group]), "<i8", "raw"),
        encode(t, "<f8", codec),
        enc(_cat([b.device_time_s for b in bs]), "<f8"),
        enc(_cat([b.counter for b in bs]), "<i8"),
        encode(np.concatenate([b.acc for b in bs]), "<f8", codec),
        encode(np.concatenate([b.gyr for b in bs]), "<f8", codec),
        enc(_cat([b.mag for b in bs]), "<f8"),
    )


def decode_sample_block(role: str, row: Mapping[str, Any] | Sequence[Any]
                        ) -> list[tuple[SampleBatch, int]]:
    """The (batch, arrival) pairs stored in one row (a mapping or a SAMPLE_BLOCK_COLUMNS tuple)."""
    if isinstance(row, Mapping):
        r = row
    elif hasattr(row, "keys"):  # sqlite3.Row
        r = {k: row[k] for k in row.keys()}
    else:
        r = dict(zip(SAMPLE_BLOCK_COLUMNS, row))
    n, codec = int(r["n"]), str(r["codec"])
    sizes = decode(r["batch_sizes"], "<i4", "raw", (-1,))
    gaps = decode(r["batch_gaps"], "u1", "raw", (-1,)).astype(bool)
    arrival = (decode(r["arrival"], "<i8", "raw", (-1,)) if r["arrival"] is not None
               else np.full(sizes.shape, -1, dtype=np.int64))

    def dec(key: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray | None:
        blob = r[key]
        return None if blob is None else decode(blob, dtype, codec, shape)

    t = dec("time_s", "<f8", (n,))
    dev = dec("device_time_s", "<f8", (n,))
    cnt = dec("counter", "<i8", (n,))
    acc = dec("acc", "<f8", (n, 3))
    gyr = dec("gyr", "<f8", (n, 3))
    mag = dec("mag", "<f8", (n, 3))
    out: list[tuple[SampleBatch, int]] = []
    i = 0
    for size, gap, arr in zip(sizes.tolist(), gaps.tolist(), arrival.tolist()):
        sl = slice(i, i + size)
        i += size
        out.append((SampleBatch(
            sensor=role,  # type: ignore[arg-type]
            time_s=t[sl], acc=acc[sl], gyr=gyr[sl],  # type: ignore[index]
            mag=None if mag is None else mag[sl],
            device_time_s=None if dev is None else dev[sl],
            counter=None if cnt is None else cnt[sl],
            gap_before=bool(gap),
        ), int(arr)))
    return out


def decode_sample_runs(role: str, row: Mapping[str, Any] | Sequence[Any]) -> list[SampleBatch]:
    """The samples of one row as few batches as possible: the block's arrays cut only before a
    batch that followed lost samples (`gap_before`), so each run is gap-free inside. For whole-
    recording readers (exports, offline analysis): no per-batch objects, same samples."""
    r = row if isinstance(row, Mapping) else (
        {k: row[k] for k in row.keys()} if hasattr(row, "keys")  # type: ignore[union-attr]
        else dict(zip(SAMPLE_BLOCK_COLUMNS, row)))
    n, codec = int(r["n"]), str(r["codec"])
    sizes = decode(r["batch_sizes"], "<i4", "raw", (-1,))
    gaps = decode(r["batch_gaps"], "u1", "raw", (-1,)).astype(bool)

    def dec(key: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray | None:
        blob = r[key]
        return None if blob is None else decode(blob, dtype, codec, shape)

    t = dec("time_s", "<f8", (n,))
    dev, cnt = dec("device_time_s", "<f8", (n,)), dec("counter", "<i8", (n,))
    acc, gyr, mag = dec("acc", "<f8", (n, 3)), dec("gyr", "<f8", (n, 3)), dec("mag", "<f8", (n, 3))
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    cuts = [0, *starts[1:][gaps[1:]].tolist(), n]
    out = []
    for k, (i0, i1) in enumerate(zip(cuts[:-1], cuts[1:])):
        sl = slice(i0, i1)
        out.append(SampleBatch(
            sensor=role, time_s=t[sl], acc=acc[sl], gyr=gyr[sl],  # type: ignore[arg-type,index]
            mag=None if mag is None else mag[sl],
            device_time_s=None if dev is None else dev[sl],
            counter=None if cnt is None else cnt[sl],
            gap_before=bool(gaps[0]) if k == 0 else True))
    return out


def concat_batches(batches: list[SampleBatch]) -> SampleBatch:
    """One batch of consecutive batches of one sensor (optional arrays kept only if all have
    them; `gap_before` of the first)."""
    first = batches[0]
    if len(batches) == 1:
        return first

    def cat(name: str) -> np.ndarray | None:
        arrs = [getattr(b, name) for b in batches]
        return None if any(a is None for a in arrs) else np.concatenate(arrs)

    return SampleBatch(first.sensor, cat("time_s"), cat("acc"),  # type: ignore[arg-type]
                       cat("gyr"), cat("mag"), cat("device_time_s"), cat("counter"),
                       first.gap_before)


# --- angles ---------------------------------------------------------------------------------

def angle_columns(angles: Any) -> dict[str, np.ndarray]:
    """Named equal-length 1-D arrays of an `AngleBatch` (or any dataclass of arrays, or mapping).

    Stored by name, so fields added to `AngleBatch` later need no schema change.
    """
    if isinstance(angles, Mapping):
        cols = {str(k): np.asarray(v) for k, v in angles.items()}
    elif is_dataclass(angles):
        cols = {f.name: np.asarray(getattr(angles, f.name)) for f in fields(angles)}
    else:
        raise TypeError(f"angles must be a dataclass of arrays or a mapping, not {type(angles)}")
    if "time_s" not in cols:
        raise ValueError("angles need a time_s column")
    n = cols["time_s"].shape[0]
    for name, a in cols.items():
        if a.ndim != 1 or a.shape[0] != n:
            raise ValueError(f"angle column {name} must have shape ({n},), got {a.shape}")
    return cols


def _dtype_of(a: np.ndarray) -> str:
    if a.dtype == np.bool_:
        return "u1"
    if np.issubdtype(a.dtype, np.integer):
        return "<i8"
    return "<f8"


def encode_angle_block(cols: Mapping[str, np.ndarray], codec: str) -> tuple[Any, ...]:
    """(n, t_first, t_last, codec, fields JSON, data) for one block of angle columns.

    `data` is the fields one after the other; with "shuffle-zlib" each field byte-shuffled and
    the whole deflated once (one small block compresses better than many tiny ones).
    """
    t = cols["time_s"]
    n = int(t.shape[0])
    spec = [[name, "bool" if a.dtype == np.bool_ else _dtype_of(a)] for name, a in cols.items()]
    if codec == "raw":
        data = b"".join(encode(a, _dtype_of(a), "raw") for a in cols.values())
    elif codec == "shuffle-zlib":
        chunks = []
        for a in cols.values():
            dt = np.dtype(_dtype_of(a))
            b = np.ascontiguousarray(a, dtype=dt)
            chunks.append(b.view(np.uint8).reshape(-1, dt.itemsize).T.tobytes())
        data = zlib.compress(b"".join(chunks), 6)
    else:
        raise ValueError(f"unknown codec {codec!r}")
    return (n, float(t[0]) if n else None, float(t[-1]) if n else None, codec,
            json.dumps(spec), data)


def decode_angle_block(n: int, codec: str, fields_json: str, data: bytes) -> dict[str, np.ndarray]:
    """Inverse of `encode_angle_block`: name -> array (booleans come back as bool)."""
    spec = json.loads(fields_json)
    raw = data if codec == "raw" else zlib.decompress(data)
    out: dict[str, np.ndarray] = {}
    pos = 0
    for name, kind in spec:
        dt = np.dtype("u1" if kind == "bool" else kind)
        size = n * dt.itemsize
        chunk = raw[pos:pos + size]
        pos += size
        if codec != "raw" and dt.itemsize > 1:
            chunk = np.frombuffer(chunk, dtype=np.uint8).reshape(dt.itemsize, n).T.tobytes()
        a = np.frombuffer(chunk, dtype=dt).astype(dt.newbyteorder("="), copy=True)
        out[name] = a.astype(bool) if kind == "bool" else a
    return out


def concat_columns(parts: Iterable[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    parts = list(parts)
    if not parts:
        return {}
    names = list(parts[0])
    return {k: np.concatenate([p[k] for p in parts if k in p]) for k in names}
