"""A bare counting peripheral for the BLE throughput benchmark (loaded by the simulated BlueZ in
its own process, so it imports nothing but the sample type).

One 20-byte notification per sample (a uint32 counter and padding) at the rate last written to
the control characteristic as a little-endian uint32 (Hz); the fake's pacer samples every
device at its peripheral's `rate_hz`.
"""

from __future__ import annotations

import struct
from typing import Any

_BASE = "-4c55-4d42-4f00-0000000000b0"
SVC = f"0000bb00{_BASE}"
DATA = f"0000bb01{_BASE}"
CTRL = f"0000bb02{_BASE}"
PACKET = struct.Struct("<I16x")


class CountingPeripheral:
    def __init__(self, name: str = "Bench-1", rate_hz: float = 100.0) -> None:
        self.name = name
        self.rate_hz = float(rate_hz)
        self.counter = 0

    def gatt_table(self) -> dict[str, dict[str, list[str]]]:
        return {SVC: {DATA: ["notify"], CTRL: ["write", "write-without-response"]}}

    def on_write(self, char_uuid: str, data: bytes) -> list[tuple[str, bytes]]:
        if char_uuid == CTRL and len(data) == 4:
            self.rate_hz = float(struct.unpack("<I", data)[0])
        return []

    def on_read(self, char_uuid: str) -> bytes:
        return b""

    def notifications_for(self, batch: Any) -> list[tuple[str, bytes]]:
        out = []
        for _ in range(len(batch)):
            out.append((DATA, PACKET.pack(self.counter & 0xFFFFFFFF)))
            self.counter += 1
        return out
