"""The BLE parts of the `lumbo` command: `lumbo scan`, `serve --ble/--upper/--lower`,
`demo --ble`. Kept apart from api/cli.py, which only wires the options in.

`lumbo demo --ble` runs the whole BLE path for real — bleak's BlueZ backend, the BlueZ D-Bus
API, each family's protocol bytes, the connection manager — against the simulated BlueZ
(sensors/simbluez) on a private dbus-daemon, with the two simulated sensors strapped to the
simulated patient. Only the radio and the body are simulated. The fake runs in its own process
(its pacing must not stall when the service is busy); the service runs in this one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from typing import Any

from api.schema import BLE_ADDRESS_PATTERN, BLE_RATE_MAX_HZ, BLE_RATE_MIN_HZ

DEMO_FAMILIES = ("witmotion", "movesense")
EXIT_NO_BLUETOOTH = 2  # scan: Bluetooth unavailable (off, no adapter, no BlueZ/system bus)
EXIT_NO_DBUS_DAEMON = 3  # demo --ble: dbus-daemon is not installed

INSTALL_DBUS = (
    "lumbo demo --ble needs dbus-daemon, which hosts the simulated BlueZ on a private bus "
    "(no real Bluetooth, no root).\n"
    "Install it with:  sudo apt-get install dbus-daemon   (Debian/Ubuntu; Fedora: dbus-daemon, "
    "Arch: dbus).\n"
    "Without BLE, `lumbo demo` runs the simulated patient directly."
)


# ---- argument types ---------------------------------------------------------------------------

def address(text: str) -> str:
    """A sensor address as bleak reports it (MAC, or the macOS CoreBluetooth UUID)."""
    value = text.strip()
    if not re.match(BLE_ADDRESS_PATTERN, value):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a sensor address (AA:BB:CC:DD:EE:FF, or a UUID on macOS); "
            "`lumbo scan` lists them")
    return value.upper()


def rate(text: str) -> float:
    value = float(text)
    if not BLE_RATE_MIN_HZ <= value <= BLE_RATE_MAX_HZ:
        raise argparse.ArgumentTypeError(
            f"must be between {BLE_RATE_MIN_HZ:g} and {BLE_RATE_MAX_HZ:g} Hz")
    return value


def families(text: str) -> tuple[str, str]:
    from sensors.devices.peripherals import PERIPHERALS

    names = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in names if f not in PERIPHERALS]
    if unknown or not 1 <= len(names) <= 2:
        raise argparse.ArgumentTypeError(
            f"give one or two of {', '.join(PERIPHERALS)} (upper,lower), e.g. witmotion,movesense")
    return (names[0], names[-1])


# ---- lumbo scan -------------------------------------------------------------------------------

def _fmt_battery(row: dict[str, Any]) -> str:
    if row.get("battery_pct") is None:
        return "–"
    mark = "*" if row.get("battery_from") == "last_session" else ""
    return f"{row['battery_pct']:.0f} %{mark}"


def scan_table(rows: list[dict[str, Any]]) -> str:
    """The scan as a fixed-width table (name, address, RSSI, family, battery, role)."""
    head = ("NAME", "ADDRESS", "RSSI", "FAMILY", "BATTERY", "ROLE")
    body = [
        (r["name"] or "?", r["address"], "–" if r["rssi"] is None else f"{r['rssi']} dBm",
         r["display_name"] or r["family"] or "?", _fmt_battery(r), r.get("role") or "")
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip()
             for row in (head, *body)]
    return "\n".join(lines)


async def _scan(timeout_s: float) -> list[dict[str, Any]]:
    from api.routes.sensors import scanned
    from api.sensor_roles import SensorRoleStore
    from recordings.paths import default_data_dir
    from sensors.ble import scan

    store = SensorRoleStore(default_data_dir())
    found = await scan(timeout_s)
    return [scanned(f, store).model_dump() for f in found]


def cmd_scan(args: argparse.Namespace) -> int:
    from sensors.ble.errors import classify

    if not args.json:
        print(f"Scanning for supported sensors for {args.timeout:g} s…", flush=True)
    try:
        rows = asyncio.run(_scan(args.timeout))
    except Exception as exc:  # noqa: BLE001 - every Bluetooth fault becomes a message
        print(f"lumbo scan: {classify(exc).message}", file=sys.stderr)
        return EXIT_NO_BLUETOOTH
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("No supported sensors found. Are they switched on and charged, and not connected "
              "to another device (a connected sensor does not advertise)?")
        return 0
    print(scan_table(rows))
    if any(r.get("battery_from") == "last_session" for r in rows):
        print("* battery as last seen in a session on this host (not advertised)")
    print(f"{len(rows)} sensor{'s' if len(rows) != 1 else ''} found. Start a session with them: "
          "lumbo serve --upper ADDRESS --lower ADDRESS (upper at T12/L1, lower on the sacrum)")
    return 0


def add_scan(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "scan", help="list the supported BLE sensors nearby",
        description="Listen for BLE advertisements and list the supported sensors (WitMotion "
                    "WT901BLE, Movesense, Movella/Xsens DOT, Polar Verity Sense): name, address, "
                    "signal strength, family, battery where known, and the role remembered on "
                    "this host. Exit code 2: Bluetooth is not available.",
    )
    p.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="how long to listen, s; default 5")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_scan)


# ---- lumbo serve --ble / --upper --lower ------------------------------------------------------

def add_serve_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("BLE sensors")
    g.add_argument("--ble", action="store_true",
                   help="sessions use BLE sensors, chosen on the patient page (the sensors "
                        "remembered on this host are preselected)")
    g.add_argument("--upper", type=address, metavar="ADDR",
                   help="the sensor at T12/L1 (implies --ble; `lumbo scan` lists addresses)")
    g.add_argument("--lower", type=address, metavar="ADDR",
                   help="the sensor on the sacrum, S2 (with --upper)")
    g.add_argument("--rate", type=rate, default=100.0, metavar="HZ",
                   help="BLE sample rate; default 100 (a family without it streams faster)")


def serve_settings(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None
                   ) -> dict[str, Any]:
    """Settings overrides for `lumbo serve` from the BLE options (errors via the parser)."""
    upper, lower = getattr(args, "upper", None), getattr(args, "lower", None)
    if (upper is None) != (lower is None) or (upper is not None and upper == lower):
        msg = "give --upper and --lower together, two different sensors"
        if parser is not None:
            parser.error(msg)
        raise SystemExit(msg)
    if not (getattr(args, "ble", False) or upper):
        return {}
    out: dict[str, Any] = {"default_source": "ble", "ble_rate_hz": args.rate}
    if upper:
        out.update(ble_upper=upper, ble_lower=lower)
    return out


def serve_title(overrides: dict[str, Any]) -> str:
    if overrides.get("ble_upper"):
        return (f"Lumbo is running with BLE sensors: upper {overrides['ble_upper']}, "
                f"lower {overrides['ble_lower']}")
    if overrides.get("default_source") == "ble":
        return "Lumbo is running with BLE sensors (choose them on the patient page)"
    return "Lumbo is running"


# ---- lumbo demo --ble -------------------------------------------------------------------------

def add_demo_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("BLE")
    g.add_argument("--ble", action="store_true",
                   help="run the demo through bleak and a simulated BlueZ (needs dbus-daemon)")
    g.add_argument("--families", type=families, default=DEMO_FAMILIES, metavar="UPPER,LOWER",
                   help="device families of the simulated sensors (witmotion, movesense, "
                        "xsens_dot, polar_verity); default witmotion,movesense")


def cmd_demo_ble(args: argparse.Namespace, make_settings: Any, print_banner: Any,
                 log_level: str) -> int:
    """`lumbo demo --ble`; `make_settings(**overrides)` and `print_banner(title, host, port)`
    come from api/cli.py so both demos share their defaults."""
    from sensors.simbluez import find_dbus_daemon

    if find_dbus_daemon() is None:
        print(INSTALL_DBUS, file=sys.stderr)
        return EXIT_NO_DBUS_DAEMON
    try:
        return asyncio.run(_demo_ble(args, make_settings, print_banner, log_level))
    except KeyboardInterrupt:
        return 130


def _server_class() -> type:
    import contextlib
    import signal
    import threading

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn re-raises Ctrl+C/SIGTERM once it has shut down, which would interrupt the
        demo's own clean-up (the simulated BlueZ and its dbus-daemon); this one does not."""

        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def]
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return Server


async def _demo_ble(args: argparse.Namespace, make_settings: Any, print_banner: Any,
                    log_level: str) -> int:
    import uvicorn

    from api.app import create_app
    from api.schema import StartSessionRequest
    from sensors.devices import family_by_id

    _Server = _server_class()  # noqa: N806
    from sensors.simbluez.demo import start_demo

    say = lambda text: print(text, flush=True)  # noqa: E731
    upper_family, lower_family = args.families
    say("Lumbo demo over BLE: bleak's real BlueZ backend against a simulated BlueZ")
    say("  starting a private D-Bus system bus (dbus-daemon) and the simulated bluetoothd…")
    demo = await start_demo((upper_family, lower_family), rate_hz=100.0, seed=args.seed)
    try:
        bus = demo.sim.bus_address
        # bleak reads this when it first connects on an event loop: set before anything BLE runs
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus
        say(f"  D-Bus system bus:  {bus}")
        say("  simulated BlueZ:   org.bluez with adapter hci0 (no radio, no root)")
        for role, fam in (("upper", upper_family), ("lower", lower_family)):
            where = "T12/L1" if role == "upper" else "sacrum, S2"
            say(f"  {role} sensor:      {family_by_id(fam).display_name} at "
                f"{demo.addresses[role]} ({where}), fed by the simulated patient")
        say("  the session scans, connects one sensor at a time, configures both at 100 Hz and "
            "calibrates; sensor health is on the therapist page")
        autostart = StartSessionRequest(source="ble", upper=demo.addresses["upper"],
                                        lower=demo.addresses["lower"], rate_hz=100.0,
                                        level=args.level)
        # the demo's simulated sensors are not remembered as this host's sensors
        settings = make_settings(autostart=autostart, default_source="ble",
                                 ble_rate_hz=100.0, remember_sensors=False)
        app = create_app(settings)
        config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level,
                                ws_ping_interval=5.0, ws_ping_timeout=10.0)
        server = _Server(config)
        print_banner("Lumbo demo: a simulated patient wearing two BLE sensors is practising",
                     settings.host, settings.port, app=app)
        await server.serve()
        return 0
    finally:
        say("Stopping the simulated BlueZ and its bus…")
        await demo.close()
