"""`python -m sensors.simbluez`: run the simulated bluetoothd as its own process.

It must be a separate process for anything timing-sensitive (ble-testing.md point 9): a fake in
the test's own event loop stalls whenever the test blocks. Without --bus it starts a private
dbus-daemon itself and reports the address in the "ready" event; `--demo xsens_dot` (or
`--demo witmotion,movesense`) also adds two sensors streaming the simulated patient.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from sensors.simbluez import dbus_patch
from sensors.simbluez.bluez import FakeBluez
from sensors.simbluez.bus import PrivateBus
from sensors.simbluez.control import Controller, serve_stdio, write_line
from sensors.simbluez.demo import DEMO_ADDRESSES, demo_commands


async def _main(args: argparse.Namespace) -> int:
    dbus_patch.apply()  # a notification flood must not disconnect the fake (see dbus_patch.py)
    own_bus: PrivateBus | None = None
    address = args.bus
    if not address:
        own_bus = PrivateBus()
        address = own_bus.start()
    fake = FakeBluez(
        address, write_line,
        connect_delay_s=args.connect_delay, adv_interval_s=args.adv_interval, tick_s=args.tick,
    )
    controller = Controller(fake)
    try:
        await fake.start()
        ready: dict[str, object] = {"event": "ready", "bus_address": address}
        if args.demo:
            families = [f.strip() for f in args.demo.split(",")]
            if len(families) == 1:
                families *= 2
            for cmd in demo_commands(families, rate_hz=args.rate, script=args.script):
                await controller.handle(cmd)
            ready["sensors"] = DEMO_ADDRESSES
        write_line(ready)
        await serve_stdio(controller)
        await fake.stop(final=True)
    finally:
        if own_bus is not None:
            own_bus.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sensors.simbluez", description=__doc__)
    parser.add_argument("--bus", help="D-Bus address to serve org.bluez on (default: own bus)")
    parser.add_argument("--connect-delay", type=float, default=0.02, help="seconds per Connect")
    parser.add_argument("--adv-interval", type=float, default=0.1, help="RSSI update period, s")
    parser.add_argument("--tick", type=float, default=0.02, help="streaming period, s")
    parser.add_argument("--demo", metavar="FAMILY[,FAMILY]",
                        help="add upper/lower sensors of these families on the simulated patient")
    parser.add_argument("--rate", type=float, default=100.0, help="demo default rate, Hz")
    parser.add_argument("--script", default="demo_script", help="sensors.simulation script")
    parser.add_argument("--path", action="append", default=[], help="extra sys.path entries")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    sys.path[:0] = args.path
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        stream=sys.stderr)
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:  # run by hand and interrupted: no traceback
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
