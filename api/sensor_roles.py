"""Which sensor plays which role on this host, remembered between sessions (`sensors.json`).

The file lives in the data directory (`$LUMBO_DATA_DIR`, else ~/.local/share/lumbo, the same
place as the recordings) and is keyed by host name: a data directory shared between machines (a
roaming home) keeps each host's sensors apart, and macOS reports per-host CoreBluetooth UUIDs
rather than MACs, so an address is only meaningful on the host that saw it. Besides the roles it
keeps what was last seen of each sensor used (name, family, battery) so that a scan can show a
battery level the advertisement does not carry.

Writes are atomic (temporary file + rename). A file that cannot be read is set aside as
`sensors.json.bad` and started afresh: a broken settings file must never stop a session. Without
a data directory (`Settings()` in tests) everything stays in memory.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from api import schema

log = logging.getLogger(__name__)

FILENAME = "sensors.json"
VERSION = 1


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class SensorRoleStore:
    """Roles (`upper`/`lower` → address), rate and last-seen sensor details of this host."""

    def __init__(self, data_dir: Path | None, host: str | None = None) -> None:
        self.path = None if data_dir is None else Path(data_dir).expanduser() / FILENAME
        self.host = host or socket.gethostname() or "localhost"
        self._doc: dict[str, Any] = {"version": VERSION, "hosts": {}}
        self._load()

    # ---- persistence -------------------------------------------------------------------------

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or not isinstance(doc.get("hosts"), dict):
                raise ValueError("not a Lumbo sensors file")
        except (OSError, ValueError) as exc:
            bad = self.path.with_name(FILENAME + ".bad")
            log.warning("%s is unreadable (%s); keeping it as %s and starting afresh",
                        self.path, exc, bad)
            with contextlib.suppress(OSError):
                os.replace(self.path, bad)
            return
        self._doc = doc

    def _save(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".sensors-", suffix=".json", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._doc, f, indent=2, sort_keys=True)
                f.write("\n")
            os.replace(tmp, self.path)
        except OSError as exc:  # remembering is a convenience: never fail the session for it
            log.warning("could not save the sensor roles to %s: %s", self.path, exc)
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(tmp)

    def _host(self) -> dict[str, Any]:
        return self._doc["hosts"].setdefault(self.host, {"roles": {}, "sensors": {}})

    # ---- roles -------------------------------------------------------------------------------

    def roles(self) -> dict[str, str]:
        """{"upper": address, "lower": address} as remembered (possibly empty)."""
        roles = self._doc["hosts"].get(self.host, {}).get("roles", {})
        return {r: str(a) for r, a in roles.items() if r in ("upper", "lower") and a}

    def rate_hz(self) -> float | None:
        rate = self._doc["hosts"].get(self.host, {}).get("rate_hz")
        return float(rate) if isinstance(rate, int | float) else None

    def assign(self, upper: str, lower: str, rate_hz: float | None = None) -> None:
        host = self._host()
        host["roles"] = {"upper": upper, "lower": lower}
        if rate_hz is not None:
            host["rate_hz"] = float(rate_hz)
        host["updated"] = _now()
        self._save()

    def role_of(self, address: str) -> str | None:
        for role, addr in self.roles().items():
            if addr.upper() == address.upper():
                return role
        return None

    # ---- what was seen of each sensor ------------------------------------------------------

    def sensor(self, address: str) -> dict[str, Any]:
        return dict(self._doc["hosts"].get(self.host, {}).get("sensors", {}).get(address, {}))

    def note_sensor(self, address: str, *, name: str = "", family: str | None = None,
                    battery_pct: float | None = None, save: bool = True) -> None:
        """Remember what a session saw of a sensor (empty values keep what was known)."""
        entry = self._host()["sensors"].setdefault(address, {})
        if name:
            entry["name"] = name
        if family:
            entry["family"] = family
        if battery_pct is not None:
            entry["battery_pct"] = round(float(battery_pct), 1)
        entry["seen"] = _now()
        if save:
            self._save()

    def save(self) -> None:
        self._save()

    # ---- API view ----------------------------------------------------------------------------

    def model(self, default_source: str = "simulated",
              default_rate_hz: float = 100.0) -> schema.SensorRoles:
        host = self._doc["hosts"].get(self.host, {})
        out: dict[str, Any] = {"rate_hz": self.rate_hz() or default_rate_hz,
                               "updated": host.get("updated"),
                               "default_source": default_source}
        for role, address in self.roles().items():
            seen = self.sensor(address)
            out[role] = schema.RememberedSensor(
                address=address, name=str(seen.get("name", "")), family=seen.get("family"),
                battery_pct=seen.get("battery_pct"),
            )
        return schema.SensorRoles(**out)
