"""A reference executor of `GattCommand` sequences against a simulated peripheral, in-process.

It is what the BLE connection manager does over the air, minus the radio: writes go to
`on_write`, reads to `on_read` (the value to the `then` hook or to the decoder), notify toggles
to `on_notify`, waits are skipped, and every notification/indication the peripheral answers
with is fed to the decoder. Follow-up commands in `DecodeResult.commands` run next. Used by the
tests and as an executable statement of the GattCommand semantics in base.py.
"""

from __future__ import annotations

from sensors.devices.base import DecodeResult, GattCommand, StreamDecoder
from sensors.devices.peripherals.base import PeripheralBase

MAX_COMMANDS = 200  # guards against a family that keeps asking for follow-ups


def run_commands(peripheral: PeripheralBase, decoder: StreamDecoder, commands: list[GattCommand]) -> list[DecodeResult]:
    results: list[DecodeResult] = []
    queue = list(commands)
    executed = 0
    while queue:
        executed += 1
        if executed > MAX_COMMANDS:
            raise RuntimeError("command sequence does not terminate")
        cmd = queue.pop(0)
        first = len(results)
        follow: list[GattCommand] = []
        if cmd.kind == "write":
            for uuid, data in peripheral.on_write(cmd.char_uuid, cmd.data, cmd.response):
                results.append(decoder.feed(uuid, data))
        elif cmd.kind == "read":
            value = peripheral.on_read(cmd.char_uuid)
            if cmd.then is not None:
                follow += cmd.then(value)
            else:
                results.append(decoder.feed(cmd.char_uuid, value))
        elif cmd.kind in ("start_notify", "stop_notify"):
            peripheral.on_notify(cmd.char_uuid, cmd.kind == "start_notify")
        elif cmd.kind != "wait":
            raise ValueError(f"unknown GattCommand kind {cmd.kind!r}")
        for result in results[first:]:
            follow += result.commands
        queue[:0] = follow
    return results
