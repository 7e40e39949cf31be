"""Find supported sensors nearby: name, address, RSSI, family, battery when it is free.

Identification is the device families' job (`sensors.devices.identify`); this module only turns
bleak's advertisement data into `sensors.devices.base.Advertisement`. Battery is reported only
where the advertisement carries it (families may offer `battery_from_advertisement(adv)`):
connecting to each sensor to read it would make a scan slow and disturb sensors in use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from sensors.ble.adapter import adapter_lock
from sensors.devices.base import Advertisement, DeviceFamily

Identify = Callable[[Advertisement], DeviceFamily | None]


@dataclass(frozen=True, slots=True)
class FoundSensor:
    name: str
    address: str
    rssi: int | None
    family: str | None  # DeviceFamily.family, None when no family matched
    battery_pct: float | None = None
    display_name: str = ""


def to_advertisement(device: BLEDevice, adv: AdvertisementData) -> Advertisement:
    return Advertisement(
        name=adv.local_name or device.name,
        address=device.address,
        service_uuids=tuple(u.lower() for u in adv.service_uuids),
        manufacturer_data=dict(adv.manufacturer_data),
        rssi=adv.rssi,
    )


def default_identify() -> Identify:
    from sensors.devices import identify  # the registry of supported families

    return identify


def identify_with(families: Sequence[DeviceFamily] | None) -> Identify:
    """`identify` over the given families, or the registry's when None."""
    if families is None:
        return default_identify()
    fams = list(families)
    return lambda adv: next((f for f in fams if f.matches(adv)), None)


def describe(adv: Advertisement, family: DeviceFamily | None) -> FoundSensor:
    battery: float | None = None
    reader: Any = getattr(family, "battery_from_advertisement", None)
    if callable(reader):
        try:
            battery = reader(adv)
        except Exception:  # a quirky advertisement must not break the scan
            battery = None
    return FoundSensor(
        name=adv.name or "",
        address=adv.address,
        rssi=adv.rssi,
        family=family.family if family is not None else None,
        battery_pct=battery,
        display_name=family.display_name if family is not None else "",
    )


async def scan(
    timeout_s: float = 5.0,
    *,
    families: Sequence[DeviceFamily] | None = None,
    include_unknown: bool = False,
) -> list[FoundSensor]:
    """Scan for `timeout_s` and return supported sensors, strongest signal first.

    Raises bleak's errors (no adapter, powered off) unchanged: the caller shows them.
    """
    identify = identify_with(families)
    async with adapter_lock():
        found = await BleakScanner.discover(timeout=timeout_s, return_adv=True)
    out: list[FoundSensor] = []
    for device, adv in found.values():
        advert = to_advertisement(device, adv)
        family = identify(advert)
        if family is None and not include_unknown:
            continue
        out.append(describe(advert, family))
    out.sort(key=lambda s: -(s.rssi if s.rssi is not None else -999))
    return out


async def find_sensor(
    address: str, timeout_s: float, identify: Identify | None = None
) -> tuple[BLEDevice, Advertisement, DeviceFamily | None] | None:
    """Scan until `address` advertises; the caller holds the adapter lock."""
    wanted = address.upper()
    seen: dict[str, Advertisement] = {}

    def match(device: BLEDevice, adv: AdvertisementData) -> bool:
        if device.address.upper() != wanted:
            return False
        seen["adv"] = to_advertisement(device, adv)
        return True

    device = await BleakScanner.find_device_by_filter(match, timeout=timeout_s)
    if device is None:
        return None
    advert = seen["adv"]
    return device, advert, (identify(advert) if identify is not None else None)


async def _cli(timeout_s: float) -> None:  # pragma: no cover - manual tool
    for s in await scan(timeout_s, include_unknown=True):
        print(f"{s.address}  {s.rssi!s:>4} dBm  {s.family or '-':<12} {s.name}")


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(_cli(5.0))
