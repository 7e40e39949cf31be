"""The upload chunk: a run of stored rows of one stream of a session, as one binary body.

An edge uploads each session as streams: `samples:<role>` (raw sample blocks), `angles` (the
live analysis' angle blocks), `events`, `calibrations` and `reports`. A chunk carries the next
rows of ONE stream, numbered per stream (`seq` 0, 1, 2, ...), with `upto`, the edge's own id of
the last row in it, so the receiver knows where the edge's next chunk starts.

Raw samples and angles travel as the stored block rows themselves (recordings/blocks.py: the
codec's BLOBs, usually shuffle-zlib), never as JSON numbers: nothing is decoded and re-encoded
on the way, so the receiver stores exactly the bytes the edge stored, and reads back exactly the
batches the edge read (bit for bit, batch boundaries, gap flags, arrival order). Events,
calibrations and reports are small JSON records; their payload goes as the stored JSON text.

Body: `MAGIC`, a 4-byte big-endian header length, the header (UTF-8 JSON: stream, seq, upto,
items), then the BLOBs of the items one after the other, their lengths in the header.

`decode_chunk` validates everything before anything is stored (`ChunkError`: a 4xx): sizes and
counts are bounded, every BLOB is inflated once, with a bound (no decompression bombs), and
must hold exactly the samples its block says, and the batch table must add up, so a block that
would not read back exactly is refused, not stored.
"""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recordings.blocks import MAX_BLOCK_SAMPLES
from recordings.codec import CODECS

MAGIC = b"LUMBO-CHUNK/1\n"
MEDIA_TYPE = "application/octet-stream"  # the body says what it is (MAGIC)
MAX_CHUNK_BYTES = 8 << 20  # a chunk is a few hundred kB; this bounds what a request may hold
MAX_HEADER_BYTES = 2 << 20
MAX_ITEMS = 1024
MAX_PAYLOAD_CHARS = 256 << 10  # one event, calibration or report as JSON text
MAX_ANGLE_FIELDS = 64

STREAM_PATTERN = r"^(samples:[a-z][a-z0-9_]{0,31}|angles|events|calibrations|reports)$"
_STREAM = re.compile(STREAM_PATTERN)
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

# The BLOB columns of a sample block, in SAMPLE_BLOCK_COLUMNS order: (column, dtype, per-sample
# shape), or per batch (None) for the batch tables; which may be absent (NULL).
SAMPLE_BLOBS: tuple[tuple[str, str, tuple[int, ...] | None, bool], ...] = (
    ("batch_sizes", "<i4", None, False),
    ("batch_gaps", "u1", None, False),
    ("arrival", "<i8", None, True),
    ("time_s", "<f8", (), False),
    ("device_time_s", "<f8", (), True),
    ("counter", "<i8", (), True),
    ("acc", "<f8", (3,), False),
    ("gyr", "<f8", (3,), False),
    ("mag", "<f8", (3,), True),
)
_ANGLE_KINDS = {"bool": 1, "u1": 1, "<i8": 8, "<f8": 8}


class ChunkError(ValueError):
    """A chunk that is malformed or out of bounds: refused, nothing of it stored."""


def stream_kind(stream: str) -> str:
    """`samples`, `angles`, `events`, `calibrations` or `reports`."""
    return stream.split(":", 1)[0]


def stream_role(stream: str) -> str | None:
    return stream.split(":", 1)[1] if stream.startswith("samples:") else None


def valid_stream(stream: str) -> bool:
    return isinstance(stream, str) and _STREAM.match(stream) is not None


@dataclass(frozen=True)
class Chunk:
    """A decoded, validated chunk. `rows` are ready for the store's statements:
    samples: SAMPLE_BLOCK_COLUMNS tuples; angles: (n, t_first, t_last, codec, fields, data);
    events: (time_s, type, payload_json); calibrations: (time_s, payload_json);
    reports: (time_s, reported_at, kind, payload_json)."""

    stream: str
    seq: int
    upto: int
    rows: tuple[tuple[Any, ...], ...]

    @property
    def kind(self) -> str:
        return stream_kind(self.stream)

    @property
    def samples(self) -> int:
        """Samples (samples) or angle frames (angles) in the chunk; 0 for records."""
        return sum(int(r[0]) for r in self.rows) if self.kind in ("samples", "angles") else 0


# --- encoding (the edge) --------------------------------------------------------------------

def encode_chunk(stream: str, seq: int, upto: int, rows: Sequence[Mapping[str, Any]]) -> bytes:
    """The body for `rows` of `stream` as the store holds them (mappings by column name:
    sample_blocks / angle_blocks columns, or events (time_s, type, payload), calibrations
    (time_s, payload), patient_reports (time_s, reported_at, kind, payload))."""
    if not valid_stream(stream):
        raise ValueError(f"not a stream name: {stream!r}")
    kind = stream_kind(stream)
    items: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for r in rows:
        if kind == "samples":
            lengths = []
            for col, _, _, _ in SAMPLE_BLOBS:
                blob = r[col]
                lengths.append(None if blob is None else len(blob))
                if blob is not None:
                    blobs.append(bytes(blob))
            items.append({"n": int(r["n"]), "codec": str(r["codec"]), "blobs": lengths})
        elif kind == "angles":
            data = bytes(r["data"])
            blobs.append(data)
            items.append({"n": int(r["n"]), "codec": str(r["codec"]), "fields": str(r["fields"]),
                          "size": len(data)})
        elif kind == "events":
            items.append({"t": r["time_s"], "type": r["type"], "payload": r["payload"]})
        elif kind == "calibrations":
            items.append({"t": r["time_s"], "payload": r["payload"]})
        else:
            items.append({"t": r["time_s"], "at": r["reported_at"], "kind": r["kind"],
                          "payload": r["payload"]})
    header = json.dumps({"stream": stream, "seq": int(seq), "upto": int(upto), "items": items},
                        separators=(",", ":")).encode()
    return b"".join((MAGIC, struct.pack(">I", len(header)), header, *blobs))


# --- decoding and validation (central) ------------------------------------------------------

def decode_chunk(body: bytes) -> Chunk:
    """A validated `Chunk`, or `ChunkError` saying what is wrong."""
    if len(body) > MAX_CHUNK_BYTES:
        raise ChunkError(f"chunk too large ({len(body)} bytes, at most {MAX_CHUNK_BYTES})")
    if not body.startswith(MAGIC) or len(body) < len(MAGIC) + 4:
        raise ChunkError(f"not a Lumbo chunk (the body must start with {MAGIC!r})")
    (hlen,) = struct.unpack(">I", body[len(MAGIC):len(MAGIC) + 4])
    start = len(MAGIC) + 4
    if hlen > MAX_HEADER_BYTES or start + hlen > len(body):
        raise ChunkError("chunk header length out of bounds")
    try:
        header = json.loads(body[start:start + hlen].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ChunkError(f"chunk header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ChunkError("chunk header must be a JSON object")
    stream, seq, upto, items = (header.get(k) for k in ("stream", "seq", "upto", "items"))
    if not valid_stream(stream):  # type: ignore[arg-type]
        raise ChunkError(f"unknown stream {stream!r} (samples:<role>, angles, events, "
                         "calibrations, reports)")
    if not _count(seq) or not _count(upto) or upto >= 1 << 62:  # type: ignore[operator]
        raise ChunkError("seq and upto must be non-negative integers")
    if not isinstance(items, list) or not 0 < len(items) <= MAX_ITEMS:
        raise ChunkError(f"items must be a list of 1 to {MAX_ITEMS} items")
    assert isinstance(stream, str) and isinstance(seq, int) and isinstance(upto, int)
    kind = stream_kind(stream)
    blobs = _Blobs(body, start + hlen)
    if kind == "samples":
        rows = tuple(_sample_row(it, blobs, stream_role(stream) or "") for it in items)
    elif kind == "angles":
        rows = tuple(_angle_row(it, blobs) for it in items)
    else:
        rows = tuple(_record_row(kind, it) for it in items)
    if blobs.pos != len(body):
        raise ChunkError(f"{len(body) - blobs.pos} bytes after the last item's data")
    return Chunk(stream, seq, upto, rows)


def _count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


class _Blobs:
    def __init__(self, body: bytes, pos: int) -> None:
        self.body, self.pos = body, pos

    def take(self, n: Any) -> bytes:
        if not _count(n) or self.pos + n > len(self.body):
            raise ChunkError("item data length out of bounds")
        out = self.body[self.pos:self.pos + n]
        self.pos += n
        return out


def _inflate(blob: bytes, codec: str, want: int) -> bytes:
    """The BLOB's bytes before compression, which must be exactly `want` bytes; inflating
    stops after `want` + 1 bytes (a decompression bomb stops there)."""
    if codec == "raw":
        out = blob
    else:
        d = zlib.decompressobj()
        try:
            out = d.decompress(blob, want + 1)
        except zlib.error as exc:
            raise ChunkError(f"corrupt compressed data: {exc}") from None
        if len(out) > want or not d.eof or d.unused_data:
            raise ChunkError("compressed data does not match its declared size")
    if len(out) != want:
        raise ChunkError("data does not match its declared size")
    return out


def _first_last_f8(raw: bytes, n: int, shuffled: bool) -> tuple[float, float]:
    """The first and last of `n` little-endian float64 values, byte-shuffled (codec.py) or not."""
    u = np.frombuffer(raw, dtype=np.uint8)
    pair = u.reshape(8, n)[:, [0, n - 1]].T if shuffled else u.reshape(n, 8)[[0, n - 1]]
    first, last = np.ascontiguousarray(pair).view("<f8").ravel()
    return float(first), float(last)


def _sample_row(it: Any, blobs: _Blobs, role: str) -> tuple[Any, ...]:
    if not isinstance(it, dict):
        raise ChunkError("a samples item must be an object")
    n, codec, lengths = it.get("n"), it.get("codec"), it.get("blobs")
    if not _count(n) or not 0 < n <= MAX_BLOCK_SAMPLES:
        raise ChunkError(f"a sample block holds 1 to {MAX_BLOCK_SAMPLES} samples")
    if codec not in CODECS:
        raise ChunkError(f"unknown codec {codec!r} (known: {', '.join(CODECS)})")
    if not isinstance(lengths, list) or len(lengths) != len(SAMPLE_BLOBS):
        raise ChunkError(f"a samples item lists {len(SAMPLE_BLOBS)} blob lengths")
    values: dict[str, bytes | None] = {}
    times = b""
    for (col, dtype, shape, optional), length in zip(SAMPLE_BLOBS, lengths):
        if length is None:
            if not optional:
                raise ChunkError(f"sample block column {col} is required")
            values[col] = None
            continue
        blob = blobs.take(length)
        # batch tables are stored raw (blocks.encode_sample_block), at most one entry a sample
        per = np.dtype(dtype).itemsize
        if shape is None:
            if len(blob) % per or not 0 < len(blob) // per <= n:
                raise ChunkError(f"sample block column {col} has a bad size")
        else:
            raw = _inflate(blob, str(codec), n * per * int(np.prod(shape, dtype=np.int64)))
            if col == "time_s":
                times = raw
        values[col] = blob
    sizes = np.frombuffer(values["batch_sizes"] or b"", dtype="<i4")
    if len(values["batch_gaps"] or b"") != len(sizes) or (
            values["arrival"] is not None and len(values["arrival"]) != 8 * len(sizes)):
        raise ChunkError("sample block batch tables differ in length")
    if int(sizes.min()) < 1 or int(sizes.sum(dtype=np.int64)) != n:
        raise ChunkError("sample block batch sizes do not add up to n")
    # every column holds exactly n samples and the batch table adds up to n: the block reads
    # back (blocks.decode_sample_block) as the batches it was made of
    t_first, t_last = _first_last_f8(times, n, codec == "shuffle-zlib")
    return (n, t_first, t_last, codec, values["batch_sizes"], values["batch_gaps"],
            values["arrival"], values["time_s"], values["device_time_s"], values["counter"],
            values["acc"], values["gyr"], values["mag"])


def _angle_row(it: Any, blobs: _Blobs) -> tuple[Any, ...]:
    if not isinstance(it, dict):
        raise ChunkError("an angles item must be an object")
    n, codec, fields, size = (it.get(k) for k in ("n", "codec", "fields", "size"))
    if not _count(n) or not 0 < n <= MAX_BLOCK_SAMPLES:
        raise ChunkError(f"an angle block holds 1 to {MAX_BLOCK_SAMPLES} frames")
    if codec not in CODECS:
        raise ChunkError(f"unknown codec {codec!r}")
    if not isinstance(fields, str) or len(fields) > 8192:
        raise ChunkError("angle block fields must be a JSON text")
    try:
        spec = json.loads(fields)
    except ValueError:
        raise ChunkError("angle block fields are not JSON") from None
    if (not isinstance(spec, list) or not 0 < len(spec) <= MAX_ANGLE_FIELDS
            or any(not (isinstance(f, list) and len(f) == 2 and isinstance(f[0], str)
                        and _FIELD.match(f[0]) and f[1] in _ANGLE_KINDS) for f in spec)
            or len({f[0] for f in spec}) != len(spec) or "time_s" not in {f[0] for f in spec}):
        raise ChunkError("angle block fields must be [name, type] pairs with time_s")
    data = blobs.take(size)
    raw = _inflate(data, str(codec), n * sum(_ANGLE_KINDS[f[1]] for f in spec))
    pos = 0
    for name, kind in spec:  # the fields one after the other (blocks.encode_angle_block)
        width = n * _ANGLE_KINDS[kind]
        if name == "time_s":
            if kind != "<f8":
                raise ChunkError("angle block time_s must be float64")
            t_first, t_last = _first_last_f8(raw[pos:pos + width], n, codec == "shuffle-zlib")
        pos += width
    return (n, t_first, t_last, codec, fields, data)


def _time(x: Any) -> float | None:
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x):
        raise ChunkError("a time must be a number or null")
    return float(x)


def _payload(x: Any) -> str:
    if not isinstance(x, str) or len(x) > MAX_PAYLOAD_CHARS:
        raise ChunkError(f"a payload is JSON text of at most {MAX_PAYLOAD_CHARS} characters")
    try:
        json.loads(x)
    except ValueError:
        raise ChunkError("a payload is not valid JSON") from None
    return x


def _name(x: Any, what: str) -> str:
    if not isinstance(x, str) or not 0 < len(x) <= 128 or any(ord(c) < 32 for c in x):
        raise ChunkError(f"{what} must be 1-128 printable characters")
    return x


def _record_row(kind: str, it: Any) -> tuple[Any, ...]:
    if not isinstance(it, dict):
        raise ChunkError(f"an {kind} item must be an object")
    if kind == "events":
        return (_time(it.get("t")), _name(it.get("type"), "an event type"),
                _payload(it.get("payload")))
    if kind == "calibrations":
        return (_time(it.get("t")), _payload(it.get("payload")))
    at = it.get("at")
    if not isinstance(at, str) or not 0 < len(at) <= 64:
        raise ChunkError("a report needs its reported_at time (ISO 8601)")
    return (_time(it.get("t")), at, _name(it.get("kind"), "a report kind"),
            _payload(it.get("payload")))
