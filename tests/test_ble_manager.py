"""The BLE connection manager end to end: bleak's real BlueZ backend against the simulated
BlueZ subprocess (scan, connect, configure, notify, link loss, faults, clean stop).

Synchronisation is by conditions (manager health, fake events) with generous timeouts; time
limits such as "silent within 1 s" are checked on the manager's own recorded times.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest

from sensors.ble import BleManager, BleSensorSource, LinkConfig, ManagerConfig, scan
from sensors.ble.backoff import Backoff
from sensors.samples import SampleBatch, SensorHealth
from sensors.simbluez import PrivateBus, SimBluez
from sensors.source import SensorSource
from test_simbluez import (  # noqa: F401  (fixtures are used by name)
    ADDR_LOWER,
    ADDR_UPPER,
    CTRL,
    DATA,
    TESTS_DIR,
    TinyFamily,
    add_tiny,
)

RATE = 100.0
FAST = ManagerConfig(
    link=LinkConfig(backoff=Backoff(initial_s=0.05, factor=2.0, max_s=0.4, jitter=0.0),
                    scan_timeout_s=3.0, connect_timeout_s=5.0, command_timeout_s=3.0,
                    stop_timeout_s=3.0),
    silence_check_s=0.1,
)
TINY_FAMILIES = [TinyFamily()]


class Collector:
    """Consumes `manager.batches()` and lets tests wait for conditions on what arrived."""

    def __init__(self, manager: BleManager) -> None:
        self.batches: list[SampleBatch] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run(manager))

    async def _run(self, manager: BleManager) -> None:
        async for batch in manager.batches():
            self.batches.append(batch)
            self._changed.set()
        self._changed.set()

    def of(self, role: str, since: int = 0) -> list[SampleBatch]:
        return [b for b in self.batches[since:] if b.sensor == role]

    def count(self, role: str, since: int = 0) -> int:
        return sum(len(b) for b in self.of(role, since))

    async def wait(self, cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not cond():
                self._changed.clear()
                await self._changed.wait()

    async def done(self) -> None:
        await asyncio.wait_for(self._task, 10)


@contextlib.asynccontextmanager
async def running(sensors: dict[str, str], families: list[Any] | None = TINY_FAMILIES,
                  config: ManagerConfig = FAST, rate_hz: float = RATE
                  ) -> AsyncIterator[tuple[BleManager, Collector]]:
    manager = BleManager(sensors, rate_hz, config=config, families=families, seed=1)
    await manager.start()
    collector = Collector(manager)
    try:
        yield manager, collector
    finally:
        await manager.stop()
        await collector.done()


def streaming(*roles: str) -> Callable[[dict[str, SensorHealth]], bool]:
    return lambda h: all(h[r].status == "streaming" for r in roles)


async def two_tiny(sim: SimBluez) -> None:
    await add_tiny(sim, ADDR_UPPER, "Tiny-U", "upper")
    await add_tiny(sim, ADDR_LOWER, "Tiny-L", "lower")
    await sim.call("start_streaming", kind="synthetic", rate_hz=RATE)


def assert_matches_sent(decoded: list[SampleBatch], sent: dict[str, Any], acc_tol: float,
                        gyr_tol: float, min_n: int = 100) -> int:
    """Decoded samples are a contiguous run of what the fake sent, equal within quantisation."""
    acc = np.concatenate([b.acc for b in decoded])
    gyr = np.concatenate([b.gyr for b in decoded])
    s_acc, s_gyr = np.asarray(sent["acc"]), np.asarray(sent["gyr"])
    w = min(50, len(acc))
    errs = [
        max(np.abs(s_acc[k:k + w] - acc[:w]).max(), np.abs(s_gyr[k:k + w] - gyr[:w]).max())
        for k in range(len(s_acc) - w + 1)
    ]
    k = int(np.argmin(errs))
    n = min(len(acc), len(s_acc) - k)
    assert n >= min_n, f"only {n} samples to compare"
    np.testing.assert_allclose(acc[:n], s_acc[k:k + n], atol=acc_tol, rtol=0)
    np.testing.assert_allclose(gyr[:n], s_gyr[k:k + n], atol=gyr_tol, rtol=0)
    return n


def ops(status: dict[str, Any], address: str) -> list[list[Any]]:
    return next(d["ops"] for d in status["devices"] if d["address"] == address)


# ---- scanning ------------------------------------------------------------------------------------

async def test_scan_reports_supported_sensors(fake: SimBluez) -> None:
    await add_tiny(fake, ADDR_UPPER, "Tiny-U", None)
    await fake.call("add_device", address="AA:00:00:00:00:09",
                    peripheral="test_simbluez:TinyPeripheral", name="Other", uuids=[],
                    manufacturer_data={})
    found = await scan(0.4, families=TINY_FAMILIES)
    assert [(s.address, s.name, s.family) for s in found] == [(ADDR_UPPER, "Tiny-U", "tiny")]
    assert found[0].rssi is not None and found[0].display_name == "Tiny test sensor"
    everything = await scan(0.4, families=TINY_FAMILIES, include_unknown=True)
    assert {s.address for s in everything} == {ADDR_UPPER, "AA:00:00:00:00:09"}


# ---- streaming -----------------------------------------------------------------------------------

async def test_two_sensors_stream_one_connect_at_a_time(system_bus: PrivateBus) -> None:
    # A slow connect makes overlapping connects collide (InProgress) unless the lock serialises.
    async with await SimBluez.start(system_bus.address, extra_paths=[TESTS_DIR],
                                    connect_delay_s=0.2) as sim:
        await two_tiny(sim)
        async with running({"upper": ADDR_UPPER, "lower": ADDR_LOWER}) as (m, col):
            await m.wait_for(streaming("upper", "lower"))
            await col.wait(lambda: col.count("upper") >= 120 and col.count("lower") >= 120)
            health = m.health()
            status = await sim.call("status")
            sent = {a: await sim.call("sent_log", address=a) for a in (ADDR_UPPER, ADDR_LOWER)}
        assert not [e for e in sim.events if e["event"] in ("connect_busy", "connect_failed")]
        for role, addr in (("upper", ADDR_UPPER), ("lower", ADDR_LOWER)):
            batches = col.of(role)
            assert not any(b.gap_before for b in batches)
            counter = np.concatenate([b.counter for b in batches])
            assert np.all(np.diff(counter) == 1)
            t = np.concatenate([b.time_s for b in batches])
            assert np.all(np.diff(t) > 0)
            assert assert_matches_sent(batches, sent[addr], 0.5e-3 + 1e-9, 0.5e-4 + 1e-9) >= 100
            h = health[role]
            assert h.connected and not h.silent and h.battery_pct == 87.0
            assert 0.8 * RATE < h.rate_hz < 1.2 * RATE
            assert h.loss_pct == 0.0 and h.device_name in ("Tiny-U", "Tiny-L")
            kinds = [op[0] for op in ops(status, addr)]
            assert kinds.index("start_notify") < kinds.index("write")  # subscribe, then start


async def test_link_drop_reconnects_and_marks_gap(fake: SimBluez) -> None:
    await two_tiny(fake)
    async with running({"upper": ADDR_UPPER, "lower": ADDR_LOWER}) as (m, col):
        await m.wait_for(streaming("upper", "lower"))
        await col.wait(lambda: col.count("upper") >= 30)
        mark = len(col.batches)
        await fake.call("drop_link", address=ADDR_UPPER)
        await m.wait_for(lambda h: h["upper"].extra["link_losses"] == "1"
                         and h["upper"].status == "streaming")
        await col.wait(lambda: col.count("upper", mark) >= 50)
        health = m.health()
        link = m.links["upper"]
    upper = col.of("upper")
    gap_at = [i for i, b in enumerate(upper) if b.gap_before]
    assert len(gap_at) == 1 and gap_at[0] >= len(upper) - len(col.of("upper", mark))
    jump = int(upper[gap_at[0]].counter[0] - upper[gap_at[0] - 1].counter[-1])
    assert jump > 1  # samples measured while the link was down are gone, and counted
    assert health["upper"].loss_pct > 0 and link.stats.missing == jump - 1
    assert health["lower"].extra["link_losses"] == "0"
    assert not any(b.gap_before for b in col.of("lower"))
    kinds = [op[0] for op in ops(await fake.call("status"), ADDR_UPPER)]
    reconnect = kinds[kinds.index("disconnect"):]
    assert reconnect[:4] == ["disconnect", "connect", "start_notify", "write"]


async def test_silent_sensor_flagged_within_a_second(fake: SimBluez) -> None:
    await two_tiny(fake)
    async with running({"upper": ADDR_UPPER, "lower": ADDR_LOWER}) as (m, col):
        await m.wait_for(streaming("upper", "lower"))
        await fake.call("mute", address=ADDR_UPPER)
        health = await m.wait_for(lambda h: h["upper"].silent, timeout_s=5)
        det = m.links["upper"].silence
        assert det.silent_since_s is not None and det.reference_s is not None
        silence = det.silent_since_s - det.reference_s
        assert 1.0 < silence <= 1.0 + 1.0  # flagged within 1 s of crossing the threshold
        assert health["upper"].connected and "no data" in health["upper"].message
        assert not health["lower"].silent
        mark = len(col.batches)
        await fake.call("mute", address=ADDR_UPPER, on=False)
        await m.wait_for(lambda h: not h["upper"].silent, timeout_s=5)
        await col.wait(lambda: col.count("upper", mark) > 0)
    assert sum(b.gap_before for b in col.of("upper", mark)) == 1  # counter jumped the silence


async def test_malformed_packets_are_counted_not_fatal(fake: SimBluez) -> None:
    await two_tiny(fake)
    async with running({"upper": ADDR_UPPER}) as (m, col):
        await m.wait_for(streaming("upper"))
        for junk in ("dead", "00" * 30, ""):
            await fake.call("notify_raw", address=ADDR_UPPER, char=DATA, data=junk)
        await m.wait_for(lambda h: h["upper"].extra["decode_errors"] == "3")
        mark = col.count("upper")
        await col.wait(lambda: col.count("upper") >= mark + 20)
        assert m.health()["upper"].status == "streaming"
        assert m.links["upper"].stats.decode_errors == {"truncated": 3}


async def test_clean_stop(fake: SimBluez) -> None:
    await two_tiny(fake)
    manager = BleManager({"upper": ADDR_UPPER, "lower": ADDR_LOWER}, RATE, config=FAST,
                         families=TINY_FAMILIES)
    await manager.start()
    col = Collector(manager)
    await manager.wait_for(streaming("upper", "lower"))
    mark = fake.mark()
    await manager.stop()
    await col.done()  # batches() ends after stop
    for addr in (ADDR_UPPER, ADDR_LOWER):
        await fake.wait_event("disconnected", address=addr, after=mark)
        tail = [op[:2] for op in ops(await fake.call("status"), addr)][-3:]
        assert tail == [["write", CTRL], ["stop_notify", DATA], ["disconnect", "host"]]
    assert all(h.status == "stopped" and not h.connected for h in manager.health().values())


# ---- faults --------------------------------------------------------------------------------------

async def test_connect_failure_backs_off_then_connects(fake: SimBluez) -> None:
    await two_tiny(fake)
    await fake.call("fail_connect", address=ADDR_UPPER, count=3)
    await fake.call("fail_connect", address=ADDR_LOWER, count=2, mode="abort")
    async with running({"upper": ADDR_UPPER, "lower": ADDR_LOWER}) as (m, _col):
        await m.wait_for(streaming("upper", "lower"))
        upper, lower = m.links["upper"], m.links["lower"]
        assert upper.retry_delays_s == pytest.approx([0.05, 0.1, 0.2])  # exponential
        assert any(s == "reconnecting" and "connection failed" in msg
                   for _, s, msg in upper.history)
        # le-connection-abort-by-local is retried inside bleak: no failed attempt for us
        assert lower.retry_delays_s == []
    assert len([e for e in fake.events if e["event"] == "connect_failed"]) == 5


def test_backoff_is_capped_with_jitter() -> None:
    import random

    b = Backoff(initial_s=0.5, factor=2.0, max_s=10.0, jitter=0.25)
    rng = random.Random(3)
    delays = [b.delay_s(a, rng) for a in range(12)]
    assert all(0.375 <= d <= 10.0 for d in delays)
    assert delays[-1] <= 10.0 and delays[-1] >= 7.5
    assert len({round(d, 6) for d in delays[6:]}) > 1  # jitter: no lock-step at the cap


async def test_rejected_start_command_is_reported_and_retried(fake: SimBluez) -> None:
    await two_tiny(fake)
    await fake.call("reject_write", address=ADDR_UPPER, char=CTRL, count=1)
    async with running({"upper": ADDR_UPPER}) as (m, col):
        await m.wait_for(streaming("upper"))
        await col.wait(lambda: col.count("upper") > 10)
        history = m.links["upper"].history
    assert any(s == "failed" and "rejected" in msg for _, s, msg in history)


async def test_adapter_power_off_and_on(fake: SimBluez) -> None:
    await two_tiny(fake)
    async with running({"upper": ADDR_UPPER, "lower": ADDR_LOWER}) as (m, col):
        await m.wait_for(streaming("upper", "lower"))
        await col.wait(lambda: col.count("upper") > 10 and col.count("lower") > 10)
        await fake.call("power", on=False)
        health = await m.wait_for(
            lambda h: all(x.status == "failed" and "powered off" in x.message for x in h.values()))
        assert not any(x.connected for x in health.values())
        mark = len(col.batches)
        await fake.call("power", on=True)
        await m.wait_for(streaming("upper", "lower"))
        await col.wait(lambda: col.count("upper", mark) > 0 and col.count("lower", mark) > 0)
    for role in ("upper", "lower"):
        assert sum(b.gap_before for b in col.of(role, mark)) == 1


async def test_adapter_missing_then_plugged_in(fake: SimBluez) -> None:
    await two_tiny(fake)
    await fake.call("remove_adapter")
    async with running({"upper": ADDR_UPPER}) as (m, _col):
        await m.wait_for(lambda h: h["upper"].status == "failed"
                         and "no Bluetooth adapter" in h["upper"].message)
        await fake.call("add_adapter")
        await m.wait_for(streaming("upper"))


@pytest.mark.parametrize("crash", [False, True], ids=["graceful", "crash"])
async def test_bluetoothd_restart(fake: SimBluez, crash: bool) -> None:
    """Graceful: bluetoothd disconnects with signals. Crash: no signals at all, only the
    NameOwnerChanged watcher can tell; either way the session continues with a gap."""
    await two_tiny(fake)
    async with running({"upper": ADDR_UPPER, "lower": ADDR_LOWER}) as (m, col):
        await m.wait_for(streaming("upper", "lower"))
        await col.wait(lambda: col.count("upper") > 10 and col.count("lower") > 10)
        mark = len(col.batches)
        await fake.call("bluetoothd_stop", crash=crash)
        await m.wait_for(lambda h: not any(x.connected for x in h.values()))
        await fake.call("bluetoothd_start")
        await m.wait_for(lambda h: streaming("upper", "lower")(h)
                         and all(x.extra["link_losses"] == "1" for x in h.values()))
        await col.wait(lambda: col.count("upper", mark) > 10 and col.count("lower", mark) > 10)
    for role in ("upper", "lower"):  # batches in flight at the stop may come first
        assert sum(b.gap_before for b in col.of(role, mark)) == 1


async def test_unknown_and_absent_sensors_fail_clearly(fake: SimBluez) -> None:
    await fake.call("add_device", address="AA:00:00:00:00:09",
                    peripheral="test_simbluez:TinyPeripheral", name="Other", uuids=[])
    config = ManagerConfig(link=LinkConfig(scan_timeout_s=0.3, backoff=FAST.link.backoff))
    async with running({"upper": "AA:00:00:00:00:09", "lower": "AA:00:00:00:00:0A"},
                       config=config) as (m, _col):
        health = await m.wait_for(lambda h: all(x.status == "failed" for x in h.values()))
    assert "not a supported sensor" in health["upper"].message
    assert "not found" in health["lower"].message


async def test_ble_sensor_source_is_a_sensor_source(fake: SimBluez) -> None:
    await two_tiny(fake)
    source = BleSensorSource(ADDR_UPPER, ADDR_LOWER, RATE, families=TINY_FAMILIES, config=FAST)
    assert isinstance(source, SensorSource)
    seen: set[str] = set()
    async for batch in source.batches():
        seen.add(batch.sensor)
        if seen == {"upper", "lower"}:
            break
    assert set(source.health()) == {"upper", "lower"}
    await source.stop()
    assert all(h.status == "stopped" for h in source.health().values())


# ---- pure pieces ---------------------------------------------------------------------------------

def test_choose_rate_prefers_exact_then_next_faster() -> None:
    from sensors.ble.session import choose_rate

    assert choose_rate((13.0, 26.0, 52.0, 104.0, 208.0), 104.0) == 104.0
    assert choose_rate((13.0, 26.0, 52.0, 104.0, 208.0), 100.0) == 104.0
    assert choose_rate((1.0, 10.0, 60.0), 100.0) == 60.0
    assert choose_rate((), 100.0) == 100.0


def test_fault_messages_are_actionable() -> None:
    from bleak.exc import (
        BleakBluetoothNotAvailableError,
        BleakBluetoothNotAvailableReason,
        BleakDBusError,
    )

    from sensors.ble.errors import SensorNotFound, classify

    off = BleakBluetoothNotAvailableError("No powered Bluetooth adapters found.",
                                          BleakBluetoothNotAvailableReason.POWERED_OFF)
    none = BleakBluetoothNotAvailableError("No Bluetooth adapters found.",
                                           BleakBluetoothNotAvailableReason.NO_BLUETOOTH)
    assert (classify(off).kind, classify(off).needs_user) == ("adapter_off", True)
    assert "turn Bluetooth on" in classify(off).message
    assert classify(none).kind == "no_adapter"
    assert classify(BleakDBusError("org.bluez.Error.NotReady", ["Resource Not Ready"])
                    ).kind == "adapter_off"
    assert classify(BleakDBusError("org.freedesktop.DBus.Error.ServiceUnknown", ["x"])
                    ).kind == "bluez_down"
    assert classify(BleakDBusError("org.bluez.Error.InProgress", ["In Progress"])).kind == "busy"
    assert classify(SensorNotFound("AA")).kind == "not_found"
    assert classify(RuntimeError("boom")).message == "RuntimeError: boom"


def test_rate_meter_and_silence_detector_on_injected_time() -> None:
    from sensors.ble.health import RateMeter, SilenceDetector

    meter = RateMeter(window_s=2.0)
    meter.start(0.0)
    for i in range(1, 301):  # 100 Hz for 3 s, in 10-sample bursts
        if i % 10 == 0:
            meter.add(i / 100, 10)
    assert meter.rate_hz(3.0) == pytest.approx(100, rel=0.06)
    det = SilenceDetector(threshold_s=1.0)
    det.arm(0.0)
    assert not det.check(0.9) and det.arrival(0.95) is False
    assert not det.check(1.9) and det.check(1.96) and det.silent
    assert det.arrival(2.5) is True and not det.silent


async def test_long_silence_forces_a_reconnect(fake: SimBluez) -> None:
    """A link that stays up but delivers nothing (zombie link, unwatched bluetoothd) is
    dropped and re-established after `stall_reconnect_s`."""
    await two_tiny(fake)
    config = ManagerConfig(link=LinkConfig(backoff=FAST.link.backoff, stall_reconnect_s=1.5),
                           silence_check_s=0.1)
    async with running({"upper": ADDR_UPPER}, config=config) as (m, _col):
        await m.wait_for(streaming("upper"))
        await fake.call("mute", address=ADDR_UPPER)
        await m.wait_for(lambda h: h["upper"].extra["link_losses"] == "1", timeout_s=10)
        await fake.call("mute", address=ADDR_UPPER, on=False)
        await m.wait_for(lambda h: streaming("upper")(h) and not h["upper"].silent)
    assert any("no data for 1.5 s" in msg for _, _, msg in m.links["upper"].history)


async def test_stop_does_not_wait_for_a_scan(fake: SimBluez) -> None:
    config = ManagerConfig(link=LinkConfig(scan_timeout_s=30.0))
    manager = BleManager({"upper": "AA:00:00:00:00:0B"}, RATE, config=config,
                         families=TINY_FAMILIES)
    await manager.start()
    await fake.wait_event("discovery", on=True)  # the link is scanning for a sensor not there
    async with asyncio.timeout(5):  # far less than the 30 s scan
        await manager.stop()
    assert manager.health()["upper"].status == "stopped"
