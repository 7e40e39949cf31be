"""The base of every event feedback/ emits: a type name, the sample time, and a JSON-safe dict.

Events are how the practice engine, the program runner and the baseline protocol talk to the live
service and to storage: each becomes one JSON message (`as_dict()`), so every payload is plain
numbers, strings, lists and dicts, rounded to what the sensors can tell apart (clinical.md,
"Sensor accuracy": about 1 degree in the sagittal plane).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from typing import Any, ClassVar


def plain(value: Any) -> Any:
    """`value` as JSON-safe data: dataclasses via `as_dict()` (or their fields), floats rounded to
    3 decimals, NaN/inf as None, enums as their values, tuples as lists."""
    if hasattr(value, "as_dict") and not isinstance(value, type):
        return value.as_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return round(value, 3) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    try:  # numpy scalars
        return plain(value.item())
    except AttributeError:
        return str(value)


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    """Something the patient (or the therapist) should hear or see, at the sample time it became
    known. Subclasses set `type` and add fields; `as_dict()` gives all fields, JSON-safe."""

    time_s: float
    type: ClassVar[str] = "event"

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "time_s": round(self.time_s, 3), **self._payload()}

    def _payload(self) -> dict[str, Any]:
        return {f.name: plain(getattr(self, f.name)) for f in fields(self) if f.name != "time_s"}
