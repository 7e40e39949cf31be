"""Open text files by name, transparently (de)compressing `.gz` and `.xz`; '-' is stdin/stdout."""

from __future__ import annotations

import gzip
import io
import lzma
import sys
from pathlib import Path
from typing import IO


def open_text(path: str | Path, mode: str = "r") -> IO[str]:
    """A text stream with newline="" (CSV line endings are ours to handle)."""
    if str(path) == "-":
        stream = sys.stdin if "r" in mode else sys.stdout
        return io.TextIOWrapper(stream.buffer,  # type: ignore[attr-defined]
                                encoding="utf-8", newline="")
    p = Path(path)
    suffix = p.suffix.lower()
    tmode = mode.replace("b", "").replace("t", "") + "t"
    if suffix == ".gz":
        return gzip.open(p, tmode, encoding="utf-8", newline="")  # type: ignore[return-value]
    if suffix == ".xz":
        return lzma.open(p, tmode, encoding="utf-8", newline="", **(  # type: ignore[return-value]
            {"preset": 9 | lzma.PRESET_EXTREME} if "w" in mode else {}))
    return open(p, mode, encoding="utf-8", newline="")
