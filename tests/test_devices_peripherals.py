"""Simulated peripherals: same GATT tables as the devices, byte-exact command handling, and the
round trip SampleBatch → notification bytes → decoder → the same values within quantisation."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from sensors.devices import family_by_id
from sensors.devices import movesense as ms
from sensors.devices import polar_verity as pv
from sensors.devices import witmotion as wm
from sensors.devices import xsens_dot as xd
from sensors.devices.movesense import MovesenseFamily
from sensors.devices.peripherals import (
    PERIPHERALS,
    GattError,
    MovesensePeripheral,
    PolarVerityPeripheral,
    WitMotionPeripheral,
    XsensDotPeripheral,
)
from sensors.devices.peripherals.harness import run_commands
from sensors.devices.xsens_dot import XsensDotFamily
from sensors.samples import SampleBatch

G = 9.80665
DEG = math.pi / 180
BLUEZ_FLAGS = {"read", "write", "write-without-response", "notify", "indicate"}


def batch(n: int, rate: float, seed: int = 0, t0: float = 10.0, mag: bool = True) -> SampleBatch:
    """Smooth, movement-like signals (a few Hz at most) with a little sensor noise."""
    rng = np.random.default_rng(seed)
    t = t0 + np.arange(n) / rate
    ph = rng.uniform(0, 2 * np.pi, 9)
    acc = np.column_stack((2 * np.sin(t + ph[0]), 1.5 * np.sin(2.3 * t + ph[1]), 9.81 + 0.5 * np.sin(0.7 * t + ph[2])))
    gyr = np.column_stack((np.cos(3 * t + ph[3]), 0.8 * np.sin(1.7 * t + ph[4]), 0.5 * np.sin(4.1 * t + ph[5])))
    acc += rng.normal(0, 1e-3, acc.shape)
    gyr += rng.normal(0, 1e-4, gyr.shape)
    m = 30 * np.sin(np.outer(t, [0.3, 0.5, 0.7]) + ph[6:]) if mag else None
    return SampleBatch("upper", t, acc, gyr, m)


def connect(family_id: str, rate: float, peripheral=None, **family_kw):
    peripheral = peripheral or PERIPHERALS[family_id]()
    family = family_by_id(family_id)
    if family_kw:
        family = type(family)(**family_kw)
    family = family.for_gatt([c.uuid for s in peripheral.gatt_table() for c in s.characteristics])
    decoder = family.new_decoder(rate)
    setup = run_commands(peripheral, decoder, family.start_commands(rate))
    return family, peripheral, decoder, setup


def decode_all(peripheral, decoder, b: SampleBatch):
    results = [decoder.feed(u, d) for u, d in peripheral.notifications_for(b)]
    samples = [s for r in results for s in r.samples]
    errors = [e for r in results for e in r.errors]
    return samples, errors, results


# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("family_id", list(PERIPHERALS))
def test_gatt_table_serves_every_command_of_the_family(family_id):
    per = PERIPHERALS[family_id]()
    table = {c.uuid: set(c.flags) for s in per.gatt_table() for c in s.characteristics}
    assert all(flags <= BLUEZ_FLAGS for flags in table.values())
    assert all(u == u.lower() and len(u) == 36 for u in table)
    family = family_by_id(family_id).for_gatt(list(table))
    rate = family.supported_rates_hz[len(family.supported_rates_hz) // 2]
    for cmd in family.start_commands(rate) + family.stop_commands() + family.battery_commands():
        if cmd.kind == "wait" and not cmd.char_uuid:
            continue
        flags = table[cmd.char_uuid]
        need = {"write": {"write", "write-without-response"}, "read": {"read"},
                "start_notify": {"notify", "indicate"}, "stop_notify": {"notify", "indicate"},
                "wait": {"notify", "indicate"}}[cmd.kind]
        assert flags & need, (cmd, flags)
    for uuid in family.notify_uuids():
        assert table[uuid] & {"notify", "indicate"}


ROUND_TRIPS = [
    ("witmotion", 50.0, {"records_per_notification": 3}, {}),
    ("witmotion", 100.0, {"chunk_size": 17}, {}),
    ("movesense", 104.0, {}, {}),
    ("movesense", 104.0, {}, {"with_mag": True}),  # DATA + PART2
    ("movesense", 208.0, {"generation": "fdf3"}, {"with_mag": True}),  # three parts, new UUIDs
    ("xsens_dot", 60.0, {"drift_ppm": 80.0}, {}),
    ("xsens_dot", 30.0, {}, {"with_mag": True}),
    ("polar_verity", 52.0, {"gyro_frame_s": 0.37}, {}),
    ("polar_verity", 208.0, {"drift_ppm": -60.0}, {}),
]


@pytest.mark.parametrize(("family_id", "rate", "per_kw", "fam_kw"), ROUND_TRIPS)
def test_round_trip_within_quantisation(family_id, rate, per_kw, fam_kw):
    per = PERIPHERALS[family_id](**per_kw)
    family, per, dec, setup = connect(family_id, rate, per, **fam_kw)
    assert [e for r in setup for e in r.errors] == []
    assert per.streaming and per.rate_hz == rate  # the start sequence configured the device
    b = batch(600, rate, mag=bool(fam_kw.get("with_mag")))
    samples, errors, _ = decode_all(per, dec, b)
    assert errors == []
    acc = np.vstack([s.acc for s in samples])
    gyr = np.vstack([s.gyr for s in samples])
    n = len(acc)
    assert n >= 540  # Polar/Movesense hold back the last partial frame/message
    if family_id == "witmotion":
        acc_tol, gyr_tol = 0.5 * 16 / 32768 * G, 0.5 * 2000 / 32768 * DEG
    elif family_id == "polar_verity":
        acc_tol, gyr_tol = 0.51 * 8 / 32768 * G, 0.51 * 2000 / 32768 * DEG
    else:  # float32 on the wire
        acc_tol, gyr_tol = 1e-5, 1e-6
    np.testing.assert_allclose(acc, b.acc[:n], atol=acc_tol, rtol=0)
    np.testing.assert_allclose(gyr, b.gyr[:n], atol=gyr_tol, rtol=0)
    if fam_kw.get("with_mag"):
        mag = np.vstack([s.mag for s in samples])
        tol = 1e-4 if family_id == "movesense" else 0.5 * 40 / 4096
        np.testing.assert_allclose(mag, b.mag[:n], atol=tol)
    if samples[0].device_time_s is not None:
        dt = np.concatenate([s.device_time_s for s in samples])
        assert np.all(np.diff(dt) > 0)
        clock = per.clock
        expected = clock.at(b.time_s[:n])
        quant = {"movesense": 1e-3, "xsens_dot": 1e-6, "polar_verity": 1e-6}[family_id]
        np.testing.assert_allclose(dt, expected, atol=quant + 1e-9)


def test_witmotion_peripheral_needs_unlock_and_answers_reads():
    per = WitMotionPeripheral(rate_hz=10)
    assert per.on_write(per.write_uuid, wm.command(wm.REG_RATE, 0x08)) == []
    assert per.rate_hz == 10  # locked: ignored, as the module does
    per.on_write(per.write_uuid, wm.UNLOCK)
    per.on_write(per.write_uuid, wm.command(wm.REG_RATE, 0x08))
    assert per.rate_hz == 50
    per.on_write(per.write_uuid, wm.command(wm.REG_RATE, 0x42))  # no such rate code: ignored
    assert per.rate_hz == 50
    per.power_cycle()
    assert per.rate_hz == 10  # not saved
    ((uuid, reply),) = per.on_write(per.write_uuid, wm.read_register(0x3A))
    assert uuid == per.notify_uuid and reply[:10] == bytes.fromhex("55713A00680169007A00")
    dec = wm.WitMotionFamily().new_decoder(10)
    per.set_battery(3.70)
    ((_, reply),) = per.on_write(per.write_uuid, wm.read_register(wm.REG_BATTERY))
    assert dec.feed(uuid, reply).battery_pct == pytest.approx(15.0)
    with pytest.raises(GattError):
        per.on_write(per.notify_uuid, b"\xff\xaa\x00\x00\x00")  # notify-only characteristic


def test_movesense_peripheral_rejects_like_the_firmware():
    per = MovesensePeripheral()
    dec = MovesenseFamily().new_decoder(104)
    cmd = per.command_uuid
    assert per.on_write(cmd, bytes((0, 5))) == [(per.data_uuid, bytes((1, 5)) + b"Hello")]
    ((_, r501),) = per.on_write(cmd, ms.subscribe_command(99, "/Meas/IMU6/100"))
    assert r501 == bytes.fromhex("016301F5")
    assert "501" in str(dec.feed(per.data_uuid, r501).errors[0])
    ((_, r404),) = per.on_write(cmd, ms.subscribe_command(99, "/Meas/Nope/104"))
    assert r404[2:] == (404).to_bytes(2, "big")
    ((_, r400),) = per.on_write(cmd, bytes((1, 0)) + b"/Meas/IMU6/104")  # reference 0
    assert r400[2:] == (400).to_bytes(2, "big")
    assert per.on_write(cmd, ms.subscribe_command(99, "Meas/IMU9/52")) == []  # success is silent
    assert per.streaming and per.rate_hz == 52
    for ref in (1, 2, 3):
        per.on_write(cmd, ms.subscribe_command(ref, "/Meas/IMU6/13"))
    ((_, r507),) = per.on_write(cmd, ms.subscribe_command(4, "/Meas/IMU6/13"))
    assert r507 == bytes.fromhex("010401FB")  # table full, as in the firmware source
    with pytest.raises(GattError):
        per.on_write(cmd, b"\x01")
    per.on_disconnect()  # the firmware unsubscribes everything when the link drops
    assert not per.streaming and per.notifications_for(batch(20, 52)) == []


def test_movesense_packets_fit_the_mtu_and_reboot_resets_the_clock():
    family, per, dec, _ = connect("movesense", 104.0, with_mag=True)
    b = batch(104, 104)
    notes = per.notifications_for(b)
    assert max(len(d) for _, d in notes) <= 155 and {d[0] for _, d in notes} == {2, 3}
    for u, d in notes:
        dec.feed(u, d)
    per.reboot(20.0)
    run_commands(per, dec, family.start_commands(104))
    samples, errors, _ = decode_all(per, dec, batch(104, 104, t0=25.0))
    assert [e.kind for e in errors] == ["clock_reset"]
    assert samples[0].device_time_s[0] == pytest.approx(5.0, abs=1e-3)


def test_xsens_peripheral_rate_control_and_cccd():
    per = XsensDotPeripheral(require_cccd=True, clock_offset_s=4294.0)  # near the 2^32 µs wrap
    fam = XsensDotFamily()
    dec = fam.new_decoder(30)
    run_commands(per, dec, fam.start_commands(30))
    assert per.output_rate_hz == 30 and per.measuring and per.mode == 21
    samples, errors, _ = decode_all(per, dec, batch(90, 30, t0=0.0))
    assert errors == [] and len(samples) == 90
    dt = np.concatenate([s.device_time_s for s in samples])
    np.testing.assert_allclose(np.diff(dt), 1 / 30, atol=1e-6)  # continuous across the wrap
    assert dt[-1] > 2**32 * 1e-6
    # rate cannot change while measuring; notifications need the CCCD
    per.on_write(xd.DEVICE_CONTROL, xd.with_output_rate(per.device_control(), 60))
    assert per.output_rate_hz == 30
    per.on_notify(xd.MEDIUM_PAYLOAD, False)
    assert per.notifications_for(batch(5, 30, t0=3.0)) == []
    assert per.set_battery(42, True) == [(xd.BATTERY, bytes((42, 1)))]
    assert dec.feed(xd.BATTERY, per.on_read(xd.BATTERY)).battery_pct == 42
    with pytest.raises(GattError):
        per.on_write(xd.CONTROL, bytes.fromhex("0101"))  # wrong length: ATT error
    per.on_write(xd.CONTROL, bytes.fromhex("010015"))
    assert not per.streaming


def test_polar_peripheral_status_codes():
    per = PolarVerityPeripheral()
    cp = pv.PMD_CP
    assert per.on_read(cp)[:2] == bytes((0x0F, 0b0110_1110))
    ((_, r),) = per.on_write(cp, pv.start_request(pv.TYPE_ACC, 104))  # 104 Hz needs SDK mode
    assert r == bytes((0xF0, 2, 2, 8))
    bad_range = bytes((2, 2)) + pv.encode_settings([(0, 52), (1, 16), (2, 3)])
    assert per.on_write(cp, bad_range)[0][1] == bytes((0xF0, 2, 2, 9))
    bad_res = bytes((2, 2)) + pv.encode_settings([(0, 52), (1, 12), (2, 8)])
    assert per.on_write(cp, bad_res)[0][1] == bytes((0xF0, 2, 2, 7))
    assert per.on_write(cp, bytes((2, 1)))[0][1] == bytes((0xF0, 2, 1, 3))  # PPG: not simulated
    assert per.on_write(cp, bytes((7, 2)))[0][1] == bytes((0xF0, 7, 2, 1))  # invalid op code
    ((_, ok),) = per.on_write(cp, pv.start_request(pv.TYPE_ACC, 52))
    assert ok[:5] == bytes((0xF0, 2, 2, 0, 0)) and ok[5:7] == bytes((5, 1))
    assert struct.unpack("<f", ok[7:11])[0] == pytest.approx(8 / 32768)
    assert per.on_write(cp, pv.start_request(pv.TYPE_ACC, 52))[0][1] == bytes((0xF0, 2, 2, 6))
    assert per.on_write(cp, bytes((2, 9)))[0][1] == bytes((0xF0, 2, 9, 12))  # SDK mode while streaming
    per_small = PolarVerityPeripheral(mtu=23)
    assert per_small.on_write(cp, pv.start_request(pv.TYPE_ACC, 52))[0][1] == bytes((0xF0, 2, 2, 10))


def test_polar_already_in_state_recovers_with_stop_and_start():
    per = PolarVerityPeripheral()
    per.on_write(pv.PMD_CP, pv.start_request(pv.TYPE_ACC, 52))  # left running by an earlier session
    per.on_disconnect()
    family, per, dec, setup = connect("polar_verity", 52.0, per)
    errors = [e for r in setup for e in r.errors]
    assert [e.kind for e in errors] == ["command_rejected"] and "ALREADY_IN_STATE" in str(errors[0])
    assert set(per.streams) == {pv.TYPE_ACC, pv.TYPE_GYRO}
    samples, errors, _ = decode_all(per, dec, batch(200, 52))
    assert errors == [] and sum(len(s) for s in samples) > 150


def test_polar_frames_fit_the_mtu_and_arrive_separately():
    family, per, dec, _ = connect("polar_verity", 208.0, PolarVerityPeripheral(mtu=100, acc_frame_s=0.5))
    notes = per.notifications_for(batch(416, 208))
    assert max(len(d) for _, d in notes) <= 97
    types = [d[0] for _, d in notes]
    assert set(types) == {2, 5} and types != sorted(types)  # interleaved, not paired on the wire
    assert all(d[9] == 0x80 for _, d in notes)  # delta-compressed type 0


def test_polar_gyro_is_interpolated_onto_acc_times():
    """Gyro sampled 4 ms after acc: the decoder puts it on the ACC time grid by interpolation."""
    per = PolarVerityPeripheral(gyro_time_offset_s=0.004)
    family, per, dec, _ = connect("polar_verity", 52.0, per)
    n = 520
    t = 5.0 + np.arange(n) / 52
    gyr = np.column_stack((0.2 * t, -0.1 * t, np.full(n, 0.05)))  # linear in time
    b = SampleBatch("lower", t, np.tile([0.0, 0.0, G], (n, 1)), gyr)
    samples, errors, _ = decode_all(per, dec, b)
    assert [e.kind for e in errors] in ([], ["unpaired"])  # the first ACC sample precedes all GYRO
    dt = np.concatenate([s.device_time_s for s in samples])
    g = np.vstack([s.gyr for s in samples])
    true_t = (dt - per.clock.offset_s) / per.clock.rate
    np.testing.assert_allclose(g[:, 0], 0.2 * true_t, atol=2e-3)  # quantisation of 0.06 °/s
