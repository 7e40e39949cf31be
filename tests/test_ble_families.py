"""Every supported device family end to end: its simulated peripheral behind the fake BlueZ,
driven by the connection manager through bleak's real BlueZ backend, decoded by its decoder.

Checks per family: identified from the advertisement, configured with the family's own command
sequence, values equal to what the simulated sensor measured within the protocol's quantisation,
host times increasing, then a link drop → reconnect (re-subscribe, start again) → data continue
with the gap marked.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from sensors.devices import FAMILIES
from sensors.simbluez import SimBluez
from test_ble_manager import assert_matches_sent, running, streaming

G = 9.80665
DEG = np.pi / 180

# A rate each family supports, and half an LSB of acc (m/s²) / gyro (rad/s) in its encoding.
CASES: dict[str, tuple[float, float, float]] = {
    # int16, ±16 g, ±2000 °/s
    "witmotion": (100.0, 0.5 * 16 / 32768 * G, 0.5 * 2000 / 32768 * DEG),
    "movesense": (104.0, 1e-5, 1e-6),  # float32
    "xsens_dot": (60.0, 1e-5, 1e-6),  # float32
    # 16-bit, ±8 g, ±2000 °/s
    "polar_verity": (52.0, 0.5 * 8 / 32768 * G, 0.5 * 2000 / 32768 * DEG),
}
SLACK = 1e-9


def peripheral_spec(family_id: str) -> str:
    from sensors.devices.peripherals import PERIPHERALS

    cls = PERIPHERALS.get(family_id)
    if cls is None:
        pytest.fail(f"no simulated peripheral for {family_id}: every family needs one")
    return f"{cls.__module__}:{cls.__name__}"


@pytest.mark.parametrize("family_id", [f.family for f in FAMILIES])
async def test_family_streams_and_survives_a_link_drop(fake: SimBluez, family_id: str) -> None:
    rate, acc_tol, gyr_tol = CASES[family_id]
    added = await fake.call("add_device", peripheral=peripheral_spec(family_id), role="upper")
    address = added["address"]
    await fake.call("start_streaming", kind="synthetic", rate_hz=rate)
    async with running({"upper": address}, families=None, rate_hz=rate) as (m, col):
        await m.wait_for(streaming("upper"), timeout_s=15)
        await col.wait(lambda: col.count("upper") >= 110, timeout_s=15)
        sent = await fake.call("sent_log", address=address)
        before = m.health()["upper"]
        mark = len(col.batches)
        await fake.call("drop_link", address=address)
        await m.wait_for(lambda h: h["upper"].extra["link_losses"] == "1"
                         and h["upper"].status == "streaming", timeout_s=15)
        await col.wait(lambda: col.count("upper", mark) >= 30, timeout_s=15)
        after = m.health()["upper"]
    assert before.extra["family"] == family_id  # identified from the advertisement
    assert before.nominal_rate_hz == rate and 0.7 * rate < before.rate_hz < 1.3 * rate
    assert before.extra["decode_errors"] == "0", m.links["upper"].stats.decode_errors
    first = col.of("upper")[: len(col.of("upper")) - len(col.of("upper", mark))]
    assert_matches_sent(first, sent, acc_tol + SLACK, gyr_tol + SLACK)
    t = np.concatenate([b.time_s for b in col.of("upper")])
    assert np.all(np.diff(t) > 0)
    resumed = col.of("upper", mark)  # may start with batches already in flight at the drop
    assert sum(b.gap_before for b in resumed) == 1
    assert after.status == "streaming" and after.connected
    ops = next(d["ops"] for d in (await fake.call("status"))["devices"])
    kinds = [op[0] for op in ops]
    second = kinds[kinds.index("disconnect"):]
    assert "start_notify" in second and "write" in second  # re-subscribed and restarted
    assert second.index("start_notify") < len(second) - 1 - second[::-1].index("write")


async def test_demo_fake_streams_the_simulated_patient(system_bus) -> None:  # noqa: F811
    """What `lumbo demo --ble` runs: two family peripherals on the simulated patient, read by
    `BleSensorSource`; the WitMotion asked for 60 Hz gets its next faster rate, 100 Hz."""
    from sensors.ble import BleSensorSource
    from sensors.simbluez.demo import start_demo
    from test_ble_manager import FAST

    demo = await start_demo(("xsens_dot", "witmotion"), bus_address=system_bus.address)
    try:
        source = BleSensorSource(demo.addresses["upper"], demo.addresses["lower"], 60.0,
                                 config=FAST)
        counts = {"upper": 0, "lower": 0}
        norms: list[float] = []
        async with asyncio.timeout(20):
            async for batch in source.batches():
                counts[batch.sensor] += len(batch)
                norms.extend(np.linalg.norm(batch.acc, axis=1).tolist())
                if min(counts.values()) >= 60:
                    break
        health = source.health()
        await source.stop()
    finally:
        await demo.close()
    assert health["upper"].extra["family"] == "xsens_dot" and health["upper"].nominal_rate_hz == 60
    assert health["lower"].extra["family"] == "witmotion" and health["lower"].nominal_rate_hz == 100
    assert 8.5 < float(np.median(norms)) < 11.0  # a person standing: about 1 g
