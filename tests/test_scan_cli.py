"""`lumbo scan` as a subprocess, through bleak's real BlueZ backend, against the simulated BlueZ:
it lists the sensors (name, address, RSSI, family, battery, remembered role); without a
reachable BlueZ it says so and exits 2."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from api.sensor_roles import SensorRoleStore
from sensors.simbluez import SimBluez
from sensors.simbluez.demo import peripheral_spec

UPPER, LOWER = "C0:1D:B0:00:00:11", "C0:1D:B0:00:00:12"


async def lumbo(*args: str, bus: str, data_dir: Path) -> tuple[int, str, str]:
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus, LUMBO_DATA_DIR=str(data_dir))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)  # a bound, not a measurement
    return proc.returncode or 0, out.decode(), err.decode()


async def test_lumbo_scan_lists_the_simulated_sensors(fake: SimBluez, tmp_path: Path) -> None:
    for family, address in (("xsens_dot", UPPER), ("polar_verity", LOWER)):
        await fake.call("add_device", peripheral=peripheral_spec(family),
                        kwargs={"address": address}, address=address)
    names = {d["address"]: d["name"] for d in (await fake.call("status"))["devices"]}
    store = SensorRoleStore(tmp_path)
    store.assign(UPPER, LOWER)
    store.note_sensor(LOWER, battery_pct=42)

    code, out, err = await lumbo("scan", "--timeout", "0.6", bus=fake.bus_address,
                                 data_dir=tmp_path)
    assert code == 0, err
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("NAME"))
    for column in ("ADDRESS", "RSSI", "FAMILY", "BATTERY", "ROLE"):
        assert column in header
    row = {a: next(line for line in lines if a in line) for a in (UPPER, LOWER)}
    assert names[UPPER] in row[UPPER] and "Xsens DOT" in row[UPPER] and "upper" in row[UPPER]
    assert names[LOWER] in row[LOWER] and "Polar Verity Sense" in row[LOWER]
    assert "42 %*" in row[LOWER] and "lower" in row[LOWER] and " dBm" in row[LOWER]
    assert "2 sensors found" in out

    code, out, err = await lumbo("scan", "--timeout", "0.4", "--json", bus=fake.bus_address,
                                 data_dir=tmp_path)
    assert code == 0, err
    rows = {r["address"]: r for r in json.loads(out)}
    assert rows[UPPER]["family"] == "xsens_dot" and rows[LOWER]["family"] == "polar_verity"


async def test_lumbo_scan_without_bluez_says_so(tmp_path: Path) -> None:
    code, out, err = await lumbo("scan", "--timeout", "0.2",
                                 bus=f"unix:path={tmp_path / 'no_bus_here'}", data_dir=tmp_path)
    assert code == 2
    assert "Bluetooth" in err and "not available" in err
