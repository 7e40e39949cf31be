"""A ready-made fake for `lumbo demo --ble`: two simulated sensors on the simulated patient.

The whole BLE path runs for real (bleak, BlueZ D-Bus API, the family's protocol bytes, the
connection manager); only the radio and the body are simulated. Each peripheral samples at the
rate the manager configured it to, paced in real time inside the fake's own process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sensors.simbluez.client import SimBluez

DEMO_ADDRESSES = {"upper": "C0:1D:B0:00:00:01", "lower": "C0:1D:B0:00:00:02"}


def peripheral_spec(family_id: str) -> str:
    """Import spec of the family's simulated peripheral (sensors.devices.peripherals)."""
    from sensors.devices.peripherals import PERIPHERALS

    cls = PERIPHERALS[family_id]
    return f"{cls.__module__}:{cls.__name__}"


def demo_commands(
    families: Sequence[str] = ("xsens_dot", "xsens_dot"),
    *,
    rate_hz: float = 100.0,
    script: str = "demo_script",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Control commands that set the demo up: `upper` then `lower` sensor, patient streaming."""
    if len(families) != 2:
        raise ValueError("give two family ids: upper, lower")
    cmds: list[dict[str, Any]] = []
    for role, family_id in zip(("upper", "lower"), families):
        address = DEMO_ADDRESSES[role]
        cmds.append({"cmd": "add_device", "peripheral": peripheral_spec(family_id),
                     "kwargs": {"address": address}, "address": address, "role": role})
    cmds.append({"cmd": "start_streaming", "kind": "patient", "rate_hz": rate_hz,
                 "script": script, "seed": seed})
    return cmds


@dataclass
class DemoFake:
    sim: SimBluez
    addresses: dict[str, str]

    @property
    def env(self) -> dict[str, str]:
        """Set these before bleak first runs on the event loop that will use the sensors."""
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.sim.bus_address}

    async def close(self) -> None:
        await self.sim.close()


async def start_demo(
    families: Sequence[str] = ("xsens_dot", "xsens_dot"),
    *,
    bus_address: str | None = None,
    rate_hz: float = 100.0,
    script: str = "demo_script",
    seed: int = 0,
) -> DemoFake:
    """Start the fake (on its own private bus unless one is given) with two demo sensors."""
    sim = await SimBluez.start(bus_address)
    try:
        for cmd in demo_commands(families, rate_hz=rate_hz, script=script, seed=seed):
            name = cmd.pop("cmd")
            await sim.call(name, **cmd)
    except BaseException:
        await sim.close()
        raise
    return DemoFake(sim, dict(DEMO_ADDRESSES))
