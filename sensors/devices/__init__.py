"""Registry of supported sensor families. Adding a device = one module + one line in FAMILIES.

`identify(adv)` returns the first family whose `matches(adv)` is true; the matching rules are
disjoint (name prefixes, vendor service UUIDs, the Xsens company id), so order only matters for
devices that would fool several of them.
"""

from __future__ import annotations

from sensors.devices.base import (
    ERROR_KINDS,
    Advertisement,
    DecodeError,
    DecodeResult,
    DeviceFamily,
    DeviceSamples,
    GattCommand,
    StreamDecoder,
)
from sensors.devices.movesense import MovesenseFamily
from sensors.devices.polar_verity import PolarVerityFamily
from sensors.devices.witmotion import WitMotionFamily
from sensors.devices.xsens_dot import XsensDotFamily

FAMILIES: tuple[DeviceFamily, ...] = (
    WitMotionFamily(),
    MovesenseFamily(),
    XsensDotFamily(),
    PolarVerityFamily(),
)


def identify(adv: Advertisement) -> DeviceFamily | None:
    """The family that can drive the advertised device, or None."""
    for family in FAMILIES:
        if family.matches(adv):
            return family
    return None


def family_by_id(family_id: str) -> DeviceFamily:
    """Look a family up by its stable id ("witmotion", "movesense", "xsens_dot", "polar_verity")."""
    for family in FAMILIES:
        if family.family == family_id:
            return family
    raise KeyError(f"no device family {family_id!r}; known: {[f.family for f in FAMILIES]}")


__all__ = [
    "ERROR_KINDS",
    "FAMILIES",
    "Advertisement",
    "DecodeError",
    "DecodeResult",
    "DeviceFamily",
    "DeviceSamples",
    "GattCommand",
    "StreamDecoder",
    "family_by_id",
    "identify",
]
