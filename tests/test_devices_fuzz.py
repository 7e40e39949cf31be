"""Fuzz: no byte sequence makes a decoder raise, emit NaN, or emit a device timestamp twice.

Two strategies per family: arbitrary bytes on any characteristic (the family's own and a
stranger), and mutations (drop, duplicate, swap, truncate, corrupt, split) of a valid stream
produced by the simulated peripheral, which reaches the deep paths (reassembly, delta frames,
pairing). Hypothesis runs derandomised, so the suite is deterministic.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensors.devices import ERROR_KINDS, FAMILIES, family_by_id
from sensors.devices.peripherals import PERIPHERALS
from sensors.devices.peripherals.harness import run_commands
from sensors.samples import SampleBatch

SETTINGS = settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "120")), deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
RATES = {"witmotion": 50.0, "movesense": 104.0, "xsens_dot": 60.0, "polar_verity": 52.0}
STRANGER = "0000abcd-0000-1000-8000-00805f9b34fb"


def char_uuids(family_id: str) -> list[str]:
    per = PERIPHERALS[family_id]()
    return [c.uuid for s in per.gatt_table() for c in s.characteristics] + [STRANGER]


class Checker:
    """Feeds a decoder and checks the invariants of every result."""

    def __init__(self, decoder) -> None:
        self.decoder = decoder
        self.last_time = -np.inf
        self.samples = 0

    def feed(self, uuid: str, data: bytes) -> None:
        result = self.decoder.feed(uuid, data)  # must not raise
        kinds = [e.kind for e in result.errors]
        assert all(k in ERROR_KINDS for k in kinds), kinds
        assert "internal" not in kinds, result.errors
        if result.battery_pct is not None:
            assert 0.0 <= result.battery_pct <= 100.0
        if "clock_reset" in kinds:
            self.last_time = -np.inf
        for s in result.samples:
            n = len(s)
            assert n > 0 and s.acc.shape == (n, 3) and s.gyr.shape == (n, 3)
            assert np.all(np.isfinite(s.acc)) and np.all(np.isfinite(s.gyr))
            if s.mag is not None:
                assert s.mag.shape == (n, 3) and np.all(np.isfinite(s.mag))
            if s.device_time_s is not None:
                t = s.device_time_s
                assert t.shape == (n,) and np.all(np.isfinite(t))
                assert np.all(np.diff(t) > 0) and t[0] > self.last_time  # never emitted twice
                self.last_time = t[-1]
            self.samples += n
        counts = self.decoder.error_counts
        assert all(k in ERROR_KINDS for k in counts)


@st.composite
def raw_notifications(draw, family_id: str):
    uuids = char_uuids(family_id)
    return draw(st.lists(st.tuples(st.sampled_from(uuids), st.binary(max_size=260)), max_size=25))


def _stream(family_id: str):
    """A decoder after the real start sequence, and the peripheral's valid notifications."""
    per = PERIPHERALS[family_id]()
    fam = family_by_id(family_id).for_gatt([u for u in char_uuids(family_id)])
    rate = RATES[family_id]
    dec = fam.new_decoder(rate)
    run_commands(per, dec, fam.start_commands(rate))
    n = int(rate * 2)
    t = 3.0 + np.arange(n) / rate
    acc = np.column_stack((np.sin(t), np.cos(t), 9.81 + 0 * t))
    gyr = np.column_stack((0.3 * np.sin(2 * t), 0 * t, 0.1 + 0 * t))
    notes = per.notifications_for(SampleBatch("upper", t, acc, gyr, np.ones((n, 3))))
    return dec, notes


mutation = st.one_of(
    st.tuples(st.just("drop"), st.integers(0, 10_000)),
    st.tuples(st.just("dup"), st.integers(0, 10_000)),
    st.tuples(st.just("swap"), st.integers(0, 10_000)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.integers(0, 300)),
    st.tuples(st.just("corrupt"), st.integers(0, 10_000), st.integers(0, 300), st.integers(0, 255)),
    st.tuples(st.just("split"), st.integers(0, 10_000), st.integers(1, 300)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(max_size=40)),
)


def mutate(notes: list[tuple[str, bytes]], ops) -> list[tuple[str, bytes]]:
    notes = list(notes)
    for op in ops:
        if not notes:
            break
        i = op[1] % len(notes)
        uuid, data = notes[i]
        if op[0] == "drop":
            del notes[i]
        elif op[0] == "dup":
            notes.insert(i, notes[i])
        elif op[0] == "swap" and i + 1 < len(notes):
            notes[i], notes[i + 1] = notes[i + 1], notes[i]
        elif op[0] == "truncate":
            notes[i] = (uuid, data[: op[2] % (len(data) + 1)])
        elif op[0] == "corrupt" and data:
            b = bytearray(data)
            b[op[2] % len(b)] = op[3]
            notes[i] = (uuid, bytes(b))
        elif op[0] == "split" and len(data) > 1:
            k = op[2] % len(data)
            notes[i:i + 1] = [(uuid, data[:k]), (uuid, data[k:])]
        elif op[0] == "insert":
            notes.insert(i, (uuid, op[2]))
    return notes


def _fuzz_raw(family_id: str, notes) -> None:
    fam = family_by_id(family_id)
    checker = Checker(fam.new_decoder(RATES[family_id]))
    for uuid, data in notes:
        checker.feed(uuid, data)


def _fuzz_mutated(family_id: str, ops) -> None:
    dec, notes = _stream(family_id)
    checker = Checker(dec)
    for uuid, data in mutate(notes, ops):
        checker.feed(uuid, data)


@SETTINGS
@given(raw_notifications("witmotion"))
def test_fuzz_raw_witmotion(notes):
    _fuzz_raw("witmotion", notes)


@SETTINGS
@given(raw_notifications("movesense"))
def test_fuzz_raw_movesense(notes):
    _fuzz_raw("movesense", notes)


@SETTINGS
@given(raw_notifications("xsens_dot"))
def test_fuzz_raw_xsens_dot(notes):
    _fuzz_raw("xsens_dot", notes)


@SETTINGS
@given(raw_notifications("polar_verity"))
def test_fuzz_raw_polar_verity(notes):
    _fuzz_raw("polar_verity", notes)


@SETTINGS
@given(st.sampled_from(sorted(RATES)), st.lists(mutation, max_size=12))
def test_fuzz_mutated_streams(family_id, ops):
    _fuzz_mutated(family_id, ops)


def test_unmutated_streams_decode_cleanly():
    for fam in FAMILIES:
        dec, notes = _stream(fam.family)
        checker = Checker(dec)
        for uuid, data in notes:
            checker.feed(uuid, data)
        assert checker.samples > 0 and dec.error_counts == {}, fam.family


def test_polar_pmd_frame_fuzz_with_factor_known():
    """Random frame bodies after a valid start: exercises the delta decoder and pairing."""
    dec, _ = _stream("polar_verity")
    checker = Checker(dec)
    rng = np.random.default_rng(7)
    ts = 800_000_000 * 10**9
    for k in range(400):
        mtype = int(rng.choice([2, 5, 6, 2 | 0x40]))
        ftype = int(rng.choice([0x00, 0x01, 0x02, 0x80, 0x81, 0x82]))
        ts += int(rng.integers(-10**8, 5 * 10**8))
        body = rng.integers(0, 256, int(rng.integers(0, 120)), dtype=np.uint8).tobytes()
        frame = bytes((mtype,)) + ts.to_bytes(8, "little", signed=False) + bytes((ftype,)) + body
        checker.feed("fb005c82-02e7-f387-1cad-8acd2d8df0c8", frame)
