"""Device decoders against packets built by hand from the published layouts (ble-imu-devices.md).

Every packet here is assembled with struct.pack from the documented field order and scaling, so
the expected SI values follow from the doc, not from the decoder under test.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from sensors.devices import Advertisement, FAMILIES, family_by_id, identify
from sensors.devices import movesense as ms
from sensors.devices import polar_verity as pv
from sensors.devices import witmotion as wm
from sensors.devices import xsens_dot as xd

G = 9.80665
DEG = math.pi / 180


def samples_of(results):
    out = [s for r in (results if isinstance(results, list) else [results]) for s in r.samples]
    return out


def kinds(result) -> list[str]:
    return [e.kind for e in result.errors]


# ---------------------------------------------------------------------------------------------
# WitMotion (§1)
# ---------------------------------------------------------------------------------------------

def wit_record(ax, ay, az, gx, gy, gz, roll=0, pitch=0, yaw=0) -> bytes:
    """0x55 0x61 + 9 int16 LE (acc, gyro, angle), §1.2."""
    return struct.pack("<BB9h", 0x55, 0x61, ax, ay, az, gx, gy, gz, roll, pitch, yaw)


def test_witmotion_record_scaling():
    dec = wm.WitMotionFamily().new_decoder(50)
    # 2048 LSB = 2048·16/32768 = 1 g; 16384 LSB = 1000 °/s; -8192 = -500 °/s.
    res = dec.feed(wm.NOTIFY, wit_record(2048, -1024, 0, 16384, -8192, 0))
    assert res.errors == []
    (s,) = samples_of(res)
    np.testing.assert_allclose(s.acc[0], [G, -0.5 * G, 0.0])
    np.testing.assert_allclose(s.gyr[0], [1000 * DEG, -500 * DEG, 0.0])
    assert s.device_time_s is None and s.counter is None  # no timestamp/counter on WitMotion


def test_witmotion_batched_and_straddling_records():
    dec = wm.WitMotionFamily().new_decoder(100)
    recs = [wit_record(i * 100, 0, 2048, i, 0, 0) for i in range(5)]
    stream = b"".join(recs)
    # three records in one notification, then the rest split at odd places (straddling)
    results = [dec.feed(wm.NOTIFY, stream[:60]), dec.feed(wm.NOTIFY, stream[60:67]),
               dec.feed(wm.NOTIFY, stream[67:93]), dec.feed(wm.NOTIFY, stream[93:])]
    assert all(r.errors == [] for r in results)
    acc = np.vstack([s.acc for s in samples_of(results)])
    np.testing.assert_allclose(acc[:, 0], np.arange(5) * 100 * 16 / 32768 * G)
    assert [len(samples_of(r)) for r in results] == [1, 0, 1, 1]


def test_witmotion_resync_after_garbage():
    dec = wm.WitMotionFamily().new_decoder(50)
    garbage = bytes([0x00, 0x55, 0x00, 0x13, 0x55, 0x62, 0xFF])  # lone 0x55s, wrong flag
    res = dec.feed(wm.NOTIFY, garbage + wit_record(0, 0, 2048, 0, 0, 0) + b"\x55")
    assert len(samples_of(res)) == 1
    assert set(kinds(res)) == {"bad_header"}
    assert dec.error_counts["bad_header"] >= 1
    # the trailing 0x55 was kept: it is the start of the next record
    res = dec.feed(wm.NOTIFY, wit_record(0, 0, 2048, 0, 0, 0)[1:])
    assert len(samples_of(res)) == 1 and res.errors == []


def test_witmotion_cut_record_is_not_glued_to_the_next():
    dec = wm.WitMotionFamily().new_decoder(50)
    assert samples_of(dec.feed(wm.NOTIFY, wit_record(1, 2, 3, 4, 5, 6)[:9])) == []
    res = dec.feed(wm.NOTIFY, wit_record(2048, 0, 0, 0, 0, 0))
    assert kinds(res) == ["truncated"]
    np.testing.assert_allclose(samples_of(res)[0].acc[0], [G, 0, 0])


def test_witmotion_register_replies_and_battery():
    dec = wm.WitMotionFamily().new_decoder(10)
    # Datasheet test vector: FF AA 27 3A 00 -> 55 71 3A 00 68 01 69 00 7A 00 00… (Hx=360, Hy=105, Hz=122)
    reply = bytes.fromhex("55713A00" "6801" "6900" "7A00") + bytes(10)
    res = dec.feed(wm.NOTIFY, reply)
    assert res.errors == [] and res.samples == [] and res.battery_pct is None
    assert (dec.registers[0x3A], dec.registers[0x3B], dec.registers[0x3C]) == (360, 105, 122)
    # battery register 0x64 = volts × 100; 3.85 V is between 3.82 V (50 %) and 3.87 V (60 %)
    res = dec.feed(wm.NOTIFY, struct.pack("<BBBB8h", 0x55, 0x71, 0x64, 0x00, 385, 0, 0, 0, 0, 0, 0, 0))
    assert res.battery_pct == pytest.approx(50 + (3.85 - 3.82) / (3.87 - 3.82) * 10)
    assert wm.battery_percent(4.3) == 100 and wm.battery_percent(3.0) == 0


def test_witmotion_commands_and_uuid_base():
    fam = wm.WitMotionFamily()
    assert fam.notify_uuid == "0000ffe4-0000-1000-8000-00805f9a34fb"  # 9a, not the SIG 9b
    cmds = fam.start_commands(50)
    writes = [c.data.hex() for c in cmds if c.kind == "write"]
    assert writes == ["ffaa6988b5", "ffaa030800", "ffaa000000"]  # unlock, rate 50 Hz, save
    assert cmds[0].kind == "start_notify"
    assert [c.kind for c in cmds].count("wait") == 3
    assert all(c.delay_s >= 0.1 for c in cmds if c.kind == "wait")
    assert fam.battery_commands()[0].data == bytes.fromhex("ffaa276400")
    with pytest.raises(ValueError):
        fam.start_commands(60)
    sig = fam.for_gatt(["0000ffe4-0000-1000-8000-00805f9b34fb", "0000ffe9-0000-1000-8000-00805f9b34fb"])
    assert sig.notify_uuid.endswith("9b34fb") and sig.write_uuid.endswith("9b34fb")
    # the decoder takes either base
    dec = sig.new_decoder(50)
    assert len(samples_of(dec.feed(sig.notify_uuid, wit_record(0, 0, 2048, 0, 0, 0)))) == 1


# ---------------------------------------------------------------------------------------------
# Movesense GSP (§2)
# ---------------------------------------------------------------------------------------------

def gsp_payload(ts_ms: int, acc, gyr, mag=None) -> bytes:
    """uint32 ms + sequential float32 arrays acc, gyro (°/s), [mag] (§2.3)."""
    arrays = [acc, gyr] + ([mag] if mag is not None else [])
    body = b"".join(struct.pack(f"<{3 * len(a)}f", *np.ravel(a)) for a in arrays)
    return struct.pack("<I", ts_ms) + body


def test_movesense_imu6_single_part():
    dec = ms.MovesenseFamily().new_decoder(52)
    acc = [[0.0, 0.0, 9.81], [0.5, -0.25, 9.75]]
    gyr = [[90.0, 0.0, -45.0], [0.0, 180.0, 0.0]]
    res = dec.feed(ms.V1_DATA, bytes((0x02, 99)) + gsp_payload(123_456, acc, gyr))
    assert res.samples == []  # first message: its end is learnt when the next DATA arrives
    res = dec.feed(ms.V1_DATA, bytes((0x02, 99)) + gsp_payload(123_456 + 38, acc, gyr))
    first, second = samples_of(res)  # the flushed first one, and the second (length now known)
    np.testing.assert_allclose(first.acc, np.array(acc, dtype=np.float32))
    np.testing.assert_allclose(first.gyr, np.array(gyr) * DEG, rtol=1e-6)
    np.testing.assert_allclose(first.device_time_s, [123.456, 123.456 + 1 / 52])  # t_i = ts + i/fs
    np.testing.assert_allclose(second.device_time_s, [123.494, 123.494 + 1 / 52])
    # from now on a message of the learnt length completes at once
    res = dec.feed(ms.V1_DATA, bytes((0x02, 99)) + gsp_payload(123_456 + 76, acc, gyr))
    assert len(samples_of(res)) == 1


def test_movesense_imu9_data_part2_reassembly():
    """IMU9 at 104 Hz, N = 8: 4 + 3·8·12 = 292 bytes → DATA (153) + DATA_PART2 (139)."""
    rng = np.random.default_rng(1)
    acc, gyr, mag = (rng.normal(0, 5, (8, 3)).astype(np.float32) for _ in range(3))
    payload = gsp_payload(5000, acc, gyr, mag)
    assert len(payload) == 292
    part1 = bytes((0x02, 99)) + payload[:153]
    part2 = bytes((0x03, 99)) + payload[153:]
    dec = ms.MovesenseFamily(with_mag=True).new_decoder(104)
    assert dec.feed(ms.V1_DATA, part1).samples == []
    res = dec.feed(ms.V1_DATA, part2)  # a part shorter than the first one ends the message
    (s,) = samples_of(res)
    np.testing.assert_allclose(s.acc, acc)
    np.testing.assert_allclose(s.gyr, gyr.astype(np.float64) * DEG)
    np.testing.assert_allclose(s.mag, mag)
    np.testing.assert_allclose(s.device_time_s, 5.0 + np.arange(8) / 104)


def test_movesense_part3_and_lost_part():
    rng = np.random.default_rng(2)
    acc, gyr = rng.normal(0, 1, (16, 3)), rng.normal(0, 1, (16, 3))
    payload = gsp_payload(1000, acc, gyr)  # 388 bytes: DATA 153 + PART2 153 + PART3 82
    parts = [bytes((t, 7)) + payload[i:i + 153] for t, i in ((2, 0), (3, 153), (4, 306))]
    dec = ms.MovesenseFamily(ref=7).new_decoder(208)
    res = [dec.feed(ms.FDF3_DATA, p) for p in parts]  # the newer generation's data characteristic
    assert len(samples_of(res)) == 1 and len(samples_of(res)[0]) == 16
    # PART2 lost: DATA, PART3 -> incomplete, then a whole message still decodes
    payload2 = gsp_payload(1154, acc, gyr)
    r1 = dec.feed(ms.FDF3_DATA, bytes((2, 7)) + payload2[:153])
    r2 = dec.feed(ms.FDF3_DATA, bytes((4, 7)) + payload2[306:])
    assert "incomplete_message" in kinds(r2) and samples_of([r1, r2]) == []
    payload3 = gsp_payload(1308, acc, gyr)
    res = [dec.feed(ms.FDF3_DATA, bytes((t, 7)) + payload3[i:i + 153]) for t, i in ((2, 0), (3, 153), (4, 306))]
    assert len(samples_of(res)) == 1


def test_movesense_command_results():
    dec = ms.MovesenseFamily().new_decoder(104)
    assert dec.feed(ms.V1_DATA, bytes((0x01, 1)) + b"Hello").errors == []
    assert dec.hello_seen
    res = dec.feed(ms.V1_DATA, bytes.fromhex("016301F5"))  # 501, big-endian
    assert kinds(res) == ["command_rejected"] and "501" in str(res.errors[0])
    res = dec.feed(ms.V1_DATA, bytes.fromhex("016301FB"))  # 507 as in the firmware source
    assert "507" in str(res.errors[0])
    assert dec.error_counts["command_rejected"] == 2


def test_movesense_commands_and_generations():
    fam = ms.MovesenseFamily()
    cmds = fam.start_commands(104)
    assert cmds[0].kind == "start_notify" and cmds[0].char_uuid == ms.V1_DATA
    writes = [c.data for c in cmds if c.kind == "write"]
    assert writes == [bytes((0, 1)), bytes((1, 99)) + b"/Meas/IMU6/104"]
    assert ms.MovesenseFamily(with_mag=True).start_commands(52)[-1].data == bytes((1, 99)) + b"/Meas/IMU9/52"
    assert fam.stop_commands()[0].data == bytes((2, 99))
    new = fam.for_gatt([ms.FDF3_COMMAND, ms.FDF3_DATA])
    assert new.command_uuid == ms.FDF3_COMMAND and new.notify_uuids() == (ms.FDF3_DATA,)
    with pytest.raises(ValueError):
        ms.subscribe_command(0, "/Meas/IMU6/104")  # reference 0 is invalid


def test_movesense_timestamps_wrap_duplicate_reset():
    dec = ms.MovesenseFamily().new_decoder(13)
    one = lambda ts: bytes((2, 99)) + gsp_payload(ts, [[0, 0, 9.8]], [[0, 0, 0]])  # noqa: E731
    res = [dec.feed(ms.V1_DATA, one(v)) for v in (2**32 - 77, 0, 77, 154)]  # wraps after the 1st
    t = np.concatenate([s.device_time_s for s in samples_of(res)])
    np.testing.assert_allclose(np.diff(t), [0.077, 0.077, 0.077])
    assert t[0] == pytest.approx((2**32 - 77) / 1000)
    # duplicate and slightly older timestamps: dropped with an error, never emitted twice
    r_dup = dec.feed(ms.V1_DATA, one(154))
    r_old = dec.feed(ms.V1_DATA, one(100))
    assert kinds(r_dup) == ["duplicate"] and kinds(r_old) == ["out_of_order"]
    assert samples_of([r_dup, r_old]) == []
    assert len(samples_of(dec.feed(ms.V1_DATA, one(231)))) == 1
    assert len(samples_of(dec.feed(ms.V1_DATA, one(3_600_000)))) == 1  # an hour later (a gap)
    # reboot: the ms clock restarts far back (more than 2 s) -> samples kept, reset reported
    r = dec.feed(ms.V1_DATA, one(50))
    assert kinds(r) == ["clock_reset"] and samples_of(r)[0].device_time_s[0] == pytest.approx(0.05)


# ---------------------------------------------------------------------------------------------
# Xsens DOT (§3)
# ---------------------------------------------------------------------------------------------

def dot_payload(ts_us: int, acc, gyr_dps, mag_raw=None, pad_to=40) -> bytes:
    out = struct.pack("<I3f3f", ts_us, *acc, *gyr_dps)
    if mag_raw is not None:
        out += struct.pack("<3h", *mag_raw)
    return out.ljust(pad_to, b"\x00")


def test_xsens_mode21_by_offset_with_padding():
    dec = xd.XsensDotFamily().new_decoder(60)
    res = dec.feed(xd.MEDIUM_PAYLOAD, dot_payload(1_000_000, [0.25, -9.5, 1.0], [10.0, -20.0, 30.0]))
    (s,) = samples_of(res)
    np.testing.assert_allclose(s.acc[0], [0.25, -9.5, 1.0])
    np.testing.assert_allclose(s.gyr[0], np.array([10.0, -20.0, 30.0]) * DEG, rtol=1e-6)
    assert s.device_time_s[0] == pytest.approx(1.0) and s.mag is None
    # the same payload unpadded (28 bytes) decodes the same
    assert len(samples_of(dec.feed(xd.MEDIUM_PAYLOAD, dot_payload(1_016_667, [0, 0, 9.8], [0, 0, 0], pad_to=28)))) == 1
    assert kinds(dec.feed(xd.MEDIUM_PAYLOAD, dot_payload(1_033_333, [0, 0, 9.8], [0, 0, 0])[:27])) == ["truncated"]


def test_xsens_mode20_mag():
    dec = xd.XsensDotFamily(with_mag=True).new_decoder(60)
    (s,) = samples_of(dec.feed(xd.MEDIUM_PAYLOAD, dot_payload(5, [0, 0, 9.8], [0, 0, 0], [4096, -2048, 0])))
    np.testing.assert_allclose(s.mag[0], [40.0, -20.0, 0.0])  # 2^-12 a.u. per LSB, 1 a.u. ≈ 40 µT


def test_xsens_timestamp_wrap():
    dec = xd.XsensDotFamily().new_decoder(60)
    ts = [2**32 - 20_000, 2**32 - 3_333, 13_334, 30_001]  # wraps between the 2nd and 3rd
    times = [samples_of(dec.feed(xd.MEDIUM_PAYLOAD, dot_payload(t, [0, 0, 9.8], [0, 0, 0])))[0].device_time_s[0]
             for t in ts]
    np.testing.assert_allclose(np.diff(times), [0.016667, 0.016667, 0.016667], atol=1e-6)
    assert dec.error_counts == {}
    assert kinds(dec.feed(xd.MEDIUM_PAYLOAD, dot_payload(30_001, [0, 0, 9.8], [0, 0, 0]))) == ["duplicate"]
    assert kinds(dec.feed(xd.MEDIUM_PAYLOAD, dot_payload(13_334, [0, 0, 9.8], [0, 0, 0]))) == ["out_of_order"]


def test_xsens_battery_and_nonfinite():
    dec = xd.XsensDotFamily().new_decoder(60)
    res = dec.feed(xd.BATTERY, bytes((87, 1)))
    assert res.battery_pct == 87 and res.charging is True
    assert kinds(dec.feed(xd.BATTERY, bytes((150, 0)))) == ["bad_value"]
    nan = dot_payload(1, [float("nan"), 0, 0], [0, 0, 0])
    assert kinds(dec.feed(xd.MEDIUM_PAYLOAD, nan)) == ["bad_value"]


def test_xsens_start_sequence_and_output_rate_read_modify_write():
    fam = xd.XsensDotFamily()
    cmds = fam.start_commands(30)
    kinds_seq = [(c.kind, c.char_uuid) for c in cmds]
    # notifications on the medium payload are enabled before `01 01 15` is written (§3.2)
    assert kinds_seq.index(("start_notify", xd.MEDIUM_PAYLOAD)) < len(cmds) - 1
    assert cmds[-1].kind == "write" and cmds[-1].data == bytes.fromhex("010115")
    assert cmds[0].data == bytes.fromhex("010015")  # stop first: rate changes need an idle device
    read = next(c for c in cmds if c.kind == "read")
    assert read.char_uuid == xd.DEVICE_CONTROL and read.then is not None
    current = bytes(range(32))
    (write,) = read.then(current)
    assert write.char_uuid == xd.DEVICE_CONTROL and len(write.data) == 32
    assert write.data[0] == 0x10 and struct.unpack_from("<H", write.data, 24)[0] == 30
    assert write.data[1:24] == current[1:24] and write.data[26:] == current[26:]  # read-modify-write
    (fallback,) = read.then(b"\x01")  # a bad read: zero structure with only the rate visited
    assert fallback.data == bytes([0x10]) + bytes(23) + struct.pack("<H", 30) + bytes(6)
    assert fam.stop_commands()[0].data == bytes.fromhex("010015")


# ---------------------------------------------------------------------------------------------
# Polar PMD (§4)
# ---------------------------------------------------------------------------------------------

def test_pmd_spec_worked_example():
    """PMD spec p. 6: reference D0 FF 65 01 E4 0F, block 08 1D, first delta FC 07 FF."""
    deltas = bytes.fromhex("FC07FF") + bytes(3 * 28)  # 29 samples of 8-bit deltas, the rest 0
    content = bytes.fromhex("D0FF6501E40F") + bytes((0x08, 0x1D)) + deltas
    raw = pv.parse_delta_frames(content, channels=3, resolution_bits=16)
    assert raw.shape == (30, 3)
    assert raw[0].tolist() == [-48, 357, 4068]
    assert raw[1].tolist() == [-52, 364, 4067]
    assert (raw[2:] == raw[1]).all()


def test_pmd_bit_packing_is_lsb_first_and_sign_extended():
    # 5-bit deltas (+1, -1, +15) then (-16, 0, 2): bit stream LSB-first across byte borders
    values = [1, -1, 15, -16, 0, 2]
    acc, pos = 0, 0
    for v in values:
        acc |= (v & 0x1F) << pos
        pos += 5
    content = struct.pack("<3h", 100, 200, 300) + bytes((5, 2)) + acc.to_bytes(4, "little")
    raw = pv.parse_delta_frames(content, 3, 16)
    assert raw.tolist() == [[100, 200, 300], [101, 199, 315], [85, 199, 317]]


def pmd_start_response(mtype: int, factor: float) -> bytes:
    return bytes((0xF0, 0x02, mtype, 0x00, 0x00)) + bytes((5, 1)) + struct.pack("<f", factor)


def pmd_frame(mtype: int, ts_ns: int, frame_type: int, content: bytes) -> bytes:
    return bytes((mtype,)) + struct.pack("<Q", ts_ns) + bytes((frame_type,)) + content


def test_pmd_frames_factor_pairing_and_time_spreading():
    dec = pv.PolarVerityFamily().new_decoder(52)
    acc_factor, gyr_factor = 8 / 32768, 2000 / 32768
    assert dec.feed(pv.PMD_CP, pmd_start_response(2, acc_factor)).errors == []
    assert dec.feed(pv.PMD_CP, pmd_start_response(5, gyr_factor)).errors == []
    period = round(1e9 / 52)
    t0 = 700_000_000 * 10**9
    # ACC: 4 samples, delta-compressed type 0 (g × factor); reference 4096 LSB = 1 g on z
    # 2-bit deltas (x, y, z) = (+1, 0, 0), (+1, 0, 0), (0, 0, +1), packed LSB-first:
    # byte0 = x1 | y1<<2 | z1<<4 | x2<<6 = 0x41, byte1 = y2 | z2<<2 | x3<<4 | y3<<6 = 0, byte2 = z3
    acc_content = struct.pack("<3h", 0, 0, 4096) + bytes((2, 3)) + bytes((0x41, 0x00, 0x01))
    # GYRO: raw int16 (frame type 0 uncompressed), 6 samples covering the ACC times, x = 100·i LSB
    gyr_raw = np.column_stack((np.arange(6) * 100, np.zeros(6), np.zeros(6))).astype("<i2")
    r_acc = dec.feed(pv.PMD_DATA, pmd_frame(2, t0 + 3 * period, 0x80, acc_content))
    assert r_acc.samples == []  # waits for GYRO around these times
    r_gyr = dec.feed(pv.PMD_DATA, pmd_frame(5, t0 + 5 * period, 0x00, gyr_raw.tobytes()))
    (s,) = samples_of(r_gyr)
    assert len(s) == 4
    np.testing.assert_allclose(s.acc[:, 0] / (acc_factor * G), [0, 1, 2, 2])
    np.testing.assert_allclose(s.acc[:, 2] / (acc_factor * G), [4096, 4096, 4096, 4097])
    # first frame: 1/fs back from the last-sample timestamp
    np.testing.assert_allclose(s.device_time_s * 1e9 - t0, np.arange(4) * period, atol=256)
    # gyro on the same grid: x = 100·i LSB at t0 + i·period -> exactly 100·i·factor °/s
    np.testing.assert_allclose(s.gyr[:, 0], np.arange(4) * 100 * gyr_factor * DEG, rtol=1e-6)
    # next ACC frame of 2 samples: spread evenly between the previous frame and this one
    acc2 = struct.pack("<3h", 2, 1, 4096) + bytes((1, 1)) + bytes((0,))
    gyr2 = np.column_stack((np.arange(6, 9) * 100, np.zeros(3), np.zeros(3))).astype("<i2")
    dec.feed(pv.PMD_DATA, pmd_frame(5, t0 + 8 * period, 0x00, gyr2.tobytes()))
    r = dec.feed(pv.PMD_DATA, pmd_frame(2, t0 + 5 * period + 1000, 0x80, acc2))
    (s2,) = samples_of(r)
    step = (2 * period + 1000) / 2
    np.testing.assert_allclose(s2.device_time_s * 1e9 - t0, [3 * period + step, 5 * period + 1000], atol=256)
    # a duplicated frame is dropped, not emitted twice
    assert kinds(dec.feed(pv.PMD_DATA, pmd_frame(2, t0 + 5 * period + 1000, 0x80, acc2))) == ["duplicate"]


def test_pmd_uncompressed_acc_is_milli_g():
    dec = pv.PolarVerityFamily().new_decoder(52)
    frame = pmd_frame(2, 10**18, 0x01, struct.pack("<3h", 1000, -500, 0))  # int16 mG
    dec.feed(pv.PMD_DATA, frame)
    np.testing.assert_allclose(dec._streams[2].v[0], [G, -G / 2, 0])


def test_pmd_control_point_errors():
    dec = pv.PolarVerityFamily().new_decoder(104)
    res = dec.feed(pv.PMD_CP, bytes.fromhex("F0020206"))  # ACC already running
    assert kinds(res) == ["command_rejected"] and "ALREADY_IN_STATE" in str(res.errors[0])
    assert [c.data for c in res.commands if c.kind == "write"] == [bytes((3, 2)), pv.start_request(2, 104)]
    assert dec.feed(pv.PMD_CP, bytes.fromhex("F0020206")).commands == []  # retried once only
    res = dec.feed(pv.PMD_CP, bytes.fromhex("F0020508"))
    assert kinds(res) == ["command_rejected"] and "INVALID_SAMPLE_RATE (8)" in str(res.errors[0])
    assert dec.feed(pv.PMD_CP, bytes.fromhex("F0030206")).errors == []  # STOP of a stopped stream
    assert dec.feed(pv.PMD_CP, bytes.fromhex("F0020906")).errors == []  # already in SDK mode
    assert kinds(dec.feed(pv.PMD_CP, bytes((0x0F, 0b0000_0100)))) == ["unsupported"]  # no GYRO bit
    assert dec.feed(pv.PMD_CP, bytes((0x0F, 0b0010_0100))).errors == []
    assert kinds(dec.feed(pv.PMD_DATA, pmd_frame(5, 1, 0x80, bytes(6)))) == ["bad_value"]  # no factor yet
    assert dec.feed(pv.BATTERY_LEVEL, bytes((64,))).battery_pct == 64


def test_pmd_start_commands():
    fam = pv.PolarVerityFamily()
    cmds = fam.start_commands(52)
    assert [c.kind for c in cmds[:3]] == ["start_notify", "start_notify", "read"]
    writes = [c.data for c in cmds if c.kind == "write"]
    # ACC: rate 52, 16 bit, ±8 g; GYRO: rate 52, 16 bit, ±2000 °/s (no SDK mode at 52 Hz)
    assert writes == [bytes.fromhex("0202" "00013400" "01011000" "02010800"),
                      bytes.fromhex("0205" "00013400" "01011000" "0201d007")]
    assert [c.data for c in fam.start_commands(104) if c.kind == "write"][0] == bytes((2, 9))
    assert all(c.char_uuid == pv.PMD_CP for c in cmds if c.kind == "wait")
    assert fam.battery_commands()[0].char_uuid == "00002a19-0000-1000-8000-00805f9b34fb"


# ---------------------------------------------------------------------------------------------
# Registry and advertisements
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("adv", "family"),
    [
        (Advertisement("WT901BLE68", "a"), "witmotion"),
        (Advertisement(None, "a", service_uuids=(wm.SERVICE,)), "witmotion"),
        (Advertisement("Movesense 174630000192", "a"), "movesense"),
        (Advertisement(None, "a", service_uuids=(ms.FDF3_SERVICE,)), "movesense"),
        (Advertisement("anything", "a", manufacturer_data={0x0886: b"\x01"}), "xsens_dot"),
        (Advertisement("Movella DOT", "a"), "xsens_dot"),
        (Advertisement("Polar Sense B5A3B12C", "a"), "polar_verity"),
        (Advertisement("Polar H10 1234", "a", service_uuids=(pv.PMD_SERVICE,)), None),  # no gyro
        (Advertisement("Headphones", "a", service_uuids=("0000180f-0000-1000-8000-00805f9b34fb",)), None),
    ],
)
def test_identify(adv, family):
    found = identify(adv)
    assert (found.family if found else None) == family


def test_registry_families_have_the_protocol():
    ids = [f.family for f in FAMILIES]
    assert ids == ["witmotion", "movesense", "xsens_dot", "polar_verity"]
    for fam in FAMILIES:
        assert family_by_id(fam.family) is fam
        rate = fam.supported_rates_hz[len(fam.supported_rates_hz) // 2]
        assert fam.start_commands(rate) and fam.stop_commands() is not None
        dec = fam.new_decoder(rate)
        assert dec.error_counts == {} and dec.rate_hz == rate
        assert fam.for_gatt([]) is not None and fam.notify_uuids()


def test_no_bleak_import_in_pure_modules():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "sensors"
    for path in [*root.joinpath("devices").rglob("*.py"), root / "timebase.py"]:
        code = [ln.strip() for ln in path.read_text().splitlines()]
        assert not any(ln.startswith(("import bleak", "from bleak")) for ln in code), path
