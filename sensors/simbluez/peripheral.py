"""What the simulated BlueZ needs from a simulated peripheral, and how it loads one.

Peripherals are generic: anything with `gatt_table()`, `on_write`, `on_read` and
`notifications_for` can sit behind the fake adapter. The device-family modules provide them for
real sensor protocols; tests use tiny ones of their own. The fake runs in a subprocess, so a
peripheral is named by an import spec ("package.module:Factory") plus JSON kwargs.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from sensors.samples import SampleBatch

Notification = tuple[str, bytes]


@runtime_checkable
class SimPeripheral(Protocol):
    """The peripheral side of a GATT server, driven by the fake BlueZ.

    `on_write` returns notifications/indications caused by the write (command responses);
    `notifications_for(batch)` turns newly generated samples into notifications, returning
    nothing while the peripheral is not streaming (it decides that from the writes it got).
    Raising from `on_write`/`on_read` makes the fake answer the GATT call with an error.
    """

    def gatt_table(self) -> Any: ...

    def on_write(self, char_uuid: str, data: bytes) -> list[Notification]: ...

    def on_read(self, char_uuid: str) -> bytes: ...

    def notifications_for(self, batch: SampleBatch) -> list[Notification]: ...


@dataclass(frozen=True, slots=True)
class CharSpec:
    uuid: str
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    uuid: str
    characteristics: tuple[CharSpec, ...]


def _flags(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        return tuple(f.strip() for f in raw.replace(",", " ").split() if f.strip())
    return tuple(str(f) for f in raw)


def _char(raw: Any) -> CharSpec:
    if isinstance(raw, CharSpec):
        return raw
    if isinstance(raw, Mapping):
        return CharSpec(str(raw["uuid"]).lower(), _flags(raw.get("flags", ())))
    if isinstance(raw, tuple | list):
        return CharSpec(str(raw[0]).lower(), _flags(raw[1]))
    return CharSpec(str(raw.uuid).lower(), _flags(raw.flags))


def _chars(raw: Any) -> tuple[CharSpec, ...]:
    if isinstance(raw, Mapping):  # {char_uuid: flags}
        return tuple(CharSpec(str(u).lower(), _flags(f)) for u, f in raw.items())
    return tuple(_char(c) for c in raw)


def normalise_gatt_table(table: Any) -> tuple[ServiceSpec, ...]:
    """Accept the few natural shapes of a GATT table and return one canonical form.

    Shapes: {service_uuid: {char_uuid: flags} | [(char_uuid, flags)]}, a list of
    (service_uuid, chars) pairs, or objects with `.uuid` and `.characteristics`/`.chars`
    (each with `.uuid` and `.flags`). Flags are BlueZ's strings ("read", "write",
    "write-without-response", "notify", "indicate").
    """
    services: list[ServiceSpec] = []
    items: Iterable[Any] = table.items() if isinstance(table, Mapping) else table
    for item in items:
        if isinstance(item, ServiceSpec):
            services.append(item)
        elif isinstance(item, tuple | list):
            services.append(ServiceSpec(str(item[0]).lower(), _chars(item[1])))
        elif isinstance(item, Mapping):
            services.append(
                ServiceSpec(str(item["uuid"]).lower(), _chars(item.get("characteristics", ())))
            )
        else:
            chars = getattr(item, "characteristics", None)
            if chars is None:
                chars = getattr(item, "chars")
            services.append(ServiceSpec(str(item.uuid).lower(), _chars(chars)))
    return tuple(services)


def load_factory(spec: str) -> Any:
    """Import "package.module:attr" (attr may be dotted) and return the attribute."""
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"peripheral spec must be 'module:Factory', got {spec!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def make_peripheral(spec: str, kwargs: Mapping[str, Any] | None = None) -> SimPeripheral:
    """Instantiate a peripheral from its import spec; checks the interface early."""
    peripheral = load_factory(spec)(**dict(kwargs or {}))
    missing = [
        m for m in ("gatt_table", "on_write", "on_read", "notifications_for")
        if not callable(getattr(peripheral, m, None))
    ]
    if missing:
        raise TypeError(f"{spec} is not a simulated peripheral: missing {', '.join(missing)}")
    return peripheral
