"""The simulated BlueZ against bleak's real BlueZ backend (no radios, no bluetoothd).

Also home of `TinyPeripheral`/`TinyFamily`: a minimal sensor protocol that exercises every
manager path (notify, awaited writes, reads, rejected commands, malformed packets) without any
vendor's quirks. The fake imports it in its subprocess as `test_simbluez:TinyPeripheral`.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sensors.devices.base import (
    Advertisement,
    DecodeError,
    DecodeResult,
    DeviceFamily,
    DeviceSamples,
    GattCommand,
)
from sensors.samples import SampleBatch
from sensors.simbluez import PrivateBus, SimBluez, SimBluezError

TESTS_DIR = Path(__file__).resolve().parent

# ---- a tiny sensor protocol ------------------------------------------------------------------

_BASE = "-4c55-4d42-4f00-000000000000"  # "LUMBO" base, not a real vendor's
SVC = f"0000aa00{_BASE}"
DATA = f"0000aa01{_BASE}"
CTRL = f"0000aa02{_BASE}"
BATT = f"0000aa03{_BASE}"
ACC_LSB = 1e-3  # m/s^2 per LSB
GYR_LSB = 1e-4  # rad/s per LSB
RECORD = struct.Struct("<H3h3h")  # counter, acc, gyr


class TinyPeripheral:
    """Streams one 14-byte record per sample after `01 <rate>` on CTRL; stops on `00`;
    rejects anything else; battery 87 % on BATT. Stops streaming when the link drops."""

    def __init__(self, name: str = "Tiny-1", battery: int = 87) -> None:
        self.name = name
        self.battery = battery
        self.streaming = False
        self.counter = 0

    def advertisement(self) -> Advertisement:
        return Advertisement(name=self.name, address="", service_uuids=(SVC,),
                             manufacturer_data={0xFFFF: b"LUMBO"})

    def gatt_table(self) -> dict[str, dict[str, list[str]]]:
        return {SVC: {DATA: ["notify"], CTRL: ["write", "write-without-response"],
                      BATT: ["read"]}}

    def on_write(self, char_uuid: str, data: bytes) -> list[tuple[str, bytes]]:
        if char_uuid == CTRL and len(data) == 2 and data[0] == 0x01:
            self.streaming = True
            return []
        if char_uuid == CTRL and data == b"\x00":
            self.streaming = False
            return []
        raise ValueError(f"unknown command {data.hex()}")

    def on_read(self, char_uuid: str) -> bytes:
        return bytes([self.battery])

    def on_disconnect(self) -> None:
        self.streaming = False

    def notifications_for(self, batch: SampleBatch) -> list[tuple[str, bytes]]:
        out = []
        acc = np.round(batch.acc / ACC_LSB).astype(int)
        gyr = np.round(batch.gyr / GYR_LSB).astype(int)
        for i in range(len(batch)):
            record = RECORD.pack(self.counter & 0xFFFF, *acc[i], *gyr[i])
            self.counter += 1  # the sensor counts every sample, sent or not
            if self.streaming:
                out.append((DATA, record))
        return out


class TinyDecoder:
    def __init__(self, rate_hz: float) -> None:
        self.rate_hz = rate_hz
        self._errors: dict[str, int] = {}
        self._last: int | None = None
        self._base = 0

    @property
    def error_counts(self) -> dict[str, int]:
        return dict(self._errors)

    def _err(self, result: DecodeResult, kind: str, msg: str) -> DecodeResult:
        self._errors[kind] = self._errors.get(kind, 0) + 1
        result.errors.append(DecodeError(kind, msg))
        return result

    def feed(self, char_uuid: str, data: bytes) -> DecodeResult:
        result = DecodeResult()
        if char_uuid == BATT:
            result.battery_pct = float(data[0]) if data else None
            return result
        if char_uuid != DATA:
            return self._err(result, "unknown_char", char_uuid)
        if len(data) != RECORD.size:
            return self._err(result, "truncated", f"{len(data)} bytes")
        c, ax, ay, az, gx, gy, gz = RECORD.unpack(data)
        if self._last is not None and c < self._last:
            self._base += 0x10000
        self._last = c
        result.samples.append(DeviceSamples(
            acc=np.array([[ax, ay, az]], float) * ACC_LSB,
            gyr=np.array([[gx, gy, gz]], float) * GYR_LSB,
            counter=np.array([self._base + c]),
        ))
        return result


class TinyFamily:
    family = "tiny"
    display_name = "Tiny test sensor"
    supported_rates_hz = (50.0, 100.0)

    def matches(self, adv: Advertisement) -> bool:
        return bool(adv.name and adv.name.startswith("Tiny")) or SVC in adv.service_uuids

    def for_gatt(self, char_uuids: Collection[str]) -> DeviceFamily:
        return self

    def notify_uuids(self) -> tuple[str, ...]:
        return (DATA,)

    def start_commands(self, rate_hz: float) -> list[GattCommand]:
        return [GattCommand("start_notify", DATA),
                GattCommand("write", CTRL, bytes([0x01, int(rate_hz)]))]

    def stop_commands(self) -> list[GattCommand]:
        return [GattCommand("write", CTRL, b"\x00"), GattCommand("stop_notify", DATA)]

    def battery_commands(self) -> list[GattCommand]:
        return [GattCommand("read", BATT)]

    def new_decoder(self, rate_hz: float) -> TinyDecoder:
        return TinyDecoder(rate_hz)


TINY = "test_simbluez:TinyPeripheral"
ADDR_UPPER = "C0:FF:EE:00:00:01"
ADDR_LOWER = "C0:FF:EE:00:00:02"

# ---- fixtures: `system_bus` and `fake` live in conftest.py (shared by every BLE test module) --


async def add_tiny(sim: SimBluez, address: str, name: str, role: str | None) -> None:
    await sim.call("add_device", address=address, peripheral=TINY, kwargs={"name": name},
                   role=role)


# ---- the fake seen through bleak ---------------------------------------------------------------

from bleak import BleakClient, BleakScanner  # noqa: E402
from bleak.exc import BleakDBusError, BleakGATTProtocolError  # noqa: E402


async def test_scan_twice_finds_devices_with_advertisement(fake: SimBluez) -> None:
    await add_tiny(fake, ADDR_UPPER, "Tiny-U", "upper")
    await add_tiny(fake, ADDR_LOWER, "Tiny-L", "lower")
    for _ in range(2):  # RSSI updates keep a second scan working (ble-testing.md point 4)
        found = await BleakScanner.discover(timeout=0.4, return_adv=True)
        assert {ADDR_UPPER, ADDR_LOWER} <= set(found)
        device, adv = found[ADDR_UPPER]
        assert device.name == "Tiny-U"
        assert SVC in adv.service_uuids
        assert adv.manufacturer_data == {0xFFFF: b"LUMBO"}
        assert -70 < adv.rssi < -50


async def test_connect_paths_notify_write_read_disconnect(fake: SimBluez) -> None:
    await add_tiny(fake, ADDR_UPPER, "Tiny-U", "upper")
    await fake.call("start_streaming", kind="synthetic", rate_hz=100)
    device = await BleakScanner.find_device_by_address(ADDR_UPPER, timeout=5)
    assert device is not None
    got: list[bytes] = []
    enough = asyncio.Event()

    def on_data(_char: Any, data: bytearray) -> None:
        got.append(bytes(data))
        if len(got) >= 20:
            enough.set()

    async with BleakClient(device) as client:
        service = client.services.get_service(SVC)
        assert service is not None
        dev_path = "/org/bluez/hci0/dev_C0_FF_EE_00_00_01"
        assert service.obj[0] == f"{dev_path}/service000a"
        char = client.services.get_characteristic(DATA)
        assert char.obj[0] == f"{dev_path}/service000a/char000b"
        assert set(char.properties) == {"notify"}
        await client.start_notify(DATA, on_data)
        await client.write_gatt_char(CTRL, b"\x01\x64", response=True)
        assert await client.read_gatt_char(BATT) == bytearray([87])
        await asyncio.wait_for(enough.wait(), 5)
        with pytest.raises(BleakGATTProtocolError):
            await client.write_gatt_char(CTRL, b"\x7f", response=True)  # peripheral refuses
        await client.stop_notify(DATA)
    assert all(len(p) == RECORD.size for p in got)
    status = await fake.call("status")
    ops = [op[0] for op in status["devices"][0]["ops"]]
    assert ops[:4] == ["connect", "start_notify", "write", "read"]
    assert ops[-2:] == ["stop_notify", "disconnect"]


async def test_link_drop_reaches_disconnected_callback(fake: SimBluez) -> None:
    await add_tiny(fake, ADDR_UPPER, "Tiny-U", "upper")
    device = await BleakScanner.find_device_by_address(ADDR_UPPER, timeout=5)
    dropped = asyncio.Event()
    client = BleakClient(device, disconnected_callback=lambda _c: dropped.set())
    await client.connect()
    await fake.call("drop_link", address=ADDR_UPPER)
    await asyncio.wait_for(dropped.wait(), 5)
    assert not client.is_connected
    await client.connect()  # the device object stays: reconnect works
    assert client.is_connected
    await client.disconnect()


async def test_connect_failures(fake: SimBluez) -> None:
    await add_tiny(fake, ADDR_UPPER, "Tiny-U", "upper")
    device = await BleakScanner.find_device_by_address(ADDR_UPPER, timeout=5)
    # le-connection-abort-by-local: bleak waits for Connected=false and retries by itself
    await fake.call("fail_connect", address=ADDR_UPPER, count=2, mode="abort")
    client = BleakClient(device, timeout=10)
    await client.connect()
    assert client.is_connected
    await client.disconnect()
    assert len([e for e in fake.events if e.get("event") == "connect_failed"]) == 2
    # a plain failure surfaces as BleakDBusError
    await fake.call("fail_connect", address=ADDR_UPPER, count=1)
    with pytest.raises(BleakDBusError) as err:
        await BleakClient(device, timeout=5).connect()
    assert err.value.dbus_error == "org.bluez.Error.Failed"


async def test_concurrent_connects_get_in_progress(system_bus: PrivateBus) -> None:
    """The fake models adapters that refuse a second connect while one is in progress."""
    async with await SimBluez.start(system_bus.address, extra_paths=[TESTS_DIR],
                                    connect_delay_s=0.3) as sim:
        await add_tiny(sim, ADDR_UPPER, "Tiny-U", None)
        await add_tiny(sim, ADDR_LOWER, "Tiny-L", None)
        found = await BleakScanner.discover(timeout=0.3)
        devices = {d.address: d for d in found}
        a = BleakClient(devices[ADDR_UPPER], timeout=5)
        b = BleakClient(devices[ADDR_LOWER], timeout=5)
        results = await asyncio.gather(a.connect(), b.connect(), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], BleakDBusError)
        assert errors[0].dbus_error == "org.bluez.Error.InProgress"
        for c in (a, b):
            if c.is_connected:
                await c.disconnect()


async def bleak_caught_up() -> None:
    """Barrier: a round trip to the fake on bleak's own manager connection. The fake's signals
    and its control replies travel on different channels; the reply to this ping comes after
    every signal the fake sent before it, so bleak's cache has seen them all."""
    from bleak.backends.bluezdbus.manager import get_global_bluez_manager
    from dbus_fast import Message

    manager = await get_global_bluez_manager()
    bus = manager._bus  # noqa: SLF001 - test-only barrier
    assert bus is not None
    await bus.call(Message(destination="org.bluez", path="/org/bluez",
                           interface="org.freedesktop.DBus.Peer", member="Ping"))


async def test_power_off_and_adapter_removal_seen_by_bleak(fake: SimBluez) -> None:
    from bleak.exc import BleakBluetoothNotAvailableError

    await add_tiny(fake, ADDR_UPPER, "Tiny-U", "upper")
    device = await BleakScanner.find_device_by_address(ADDR_UPPER, timeout=5)
    dropped = asyncio.Event()
    client = BleakClient(device, disconnected_callback=lambda _c: dropped.set())
    await client.connect()
    await fake.call("power", on=False)
    await asyncio.wait_for(dropped.wait(), 5)  # powering off drops links, with signals
    await bleak_caught_up()
    with pytest.raises(BleakBluetoothNotAvailableError, match="powered"):
        await BleakScanner.discover(timeout=0.2)
    await fake.call("power", on=True)
    await bleak_caught_up()
    assert ADDR_UPPER in {d.address for d in await BleakScanner.discover(timeout=0.3)}
    await fake.call("remove_adapter")
    await bleak_caught_up()
    with pytest.raises(BleakBluetoothNotAvailableError, match="No Bluetooth adapters"):
        await BleakScanner.discover(timeout=0.2)
    await fake.call("add_adapter")
    await bleak_caught_up()
    assert ADDR_UPPER in {d.address for d in await BleakScanner.discover(timeout=0.3)}


async def test_bluetoothd_restart_disconnects_with_signals(fake: SimBluez) -> None:
    await add_tiny(fake, ADDR_UPPER, "Tiny-U", "upper")
    device = await BleakScanner.find_device_by_address(ADDR_UPPER, timeout=5)
    dropped = asyncio.Event()
    client = BleakClient(device, disconnected_callback=lambda _c: dropped.set())
    await client.connect()
    mark = fake.mark()
    await fake.call("restart_bluetoothd", down_s=0.2)
    await asyncio.wait_for(dropped.wait(), 5)
    await fake.wait_event("bluetoothd", state="up", after=mark)
    await bleak_caught_up()
    device = await BleakScanner.find_device_by_address(ADDR_UPPER, timeout=5)
    assert device is not None
    async with BleakClient(device) as again:
        assert again.is_connected


async def test_control_errors_are_replies_not_crashes(fake: SimBluez) -> None:
    with pytest.raises(SimBluezError, match="unknown command"):
        await fake.call("no_such_command")
    with pytest.raises(SimBluezError, match="no simulated device"):
        await fake.call("drop_link", address="00:00:00:00:00:00")
    with pytest.raises(SimBluezError, match="module:Factory"):
        await fake.call("add_device", address=ADDR_UPPER, peripheral="nonsense")
    assert (await fake.call("ping")) == {"pong": True}


async def test_sent_log_and_raw_notifications(fake: SimBluez) -> None:
    await add_tiny(fake, ADDR_UPPER, "Tiny-U", "upper")
    await fake.call("start_streaming", kind="synthetic", rate_hz=100)
    device = await BleakScanner.find_device_by_address(ADDR_UPPER, timeout=5)
    raw = asyncio.Event()
    async with BleakClient(device) as client:
        await client.start_notify(
            DATA, lambda _c, d: raw.set() if bytes(d) == b"\xde\xad" else None)
        assert (await fake.call("notify_raw", address=ADDR_UPPER, char=DATA, data="dead"))["sent"]
        await asyncio.wait_for(raw.wait(), 5)
        await client.write_gatt_char(CTRL, b"\x01\x64", response=True)
        await fake.wait_event("write", address=ADDR_UPPER)
    log = await fake.call("sent_log", address=ADDR_UPPER, clear=True)
    assert len(log["time_s"]) == len(log["acc"]) == len(log["gyr"])
    assert (await fake.call("sent_log", address=ADDR_UPPER))["time_s"] == []


def test_missing_dbus_daemon_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    from sensors.simbluez import testing

    monkeypatch.setattr(testing, "find_dbus_daemon", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="dbus-daemon"):
        testing.require_dbus_daemon()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="dbus-daemon"):
        testing.require_dbus_daemon()
