"""`AngleBatch`: lumbar angles and rates at the lower sensor's sample times (docs/contracts.md)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True)
class AngleBatch:
    """Lumbar angles at the lower sensor's sample times; equal-length arrays."""

    time_s: np.ndarray
    flexion_deg: np.ndarray
    lateral_bend_deg: np.ndarray
    axial_rotation_deg: np.ndarray
    pelvic_tilt_deg: np.ndarray
    upper_inclination_deg: np.ndarray
    """Sagittal inclination of the upper segment (its x axis below horizontal), > 0 forward."""
    flexion_velocity_deg_s: np.ndarray
    lateral_bend_velocity_deg_s: np.ndarray
    axial_rotation_velocity_deg_s: np.ndarray
    lumbar_angular_speed_deg_s: np.ndarray
    """Norm of the relative angular velocity (gyroscope-based; for smoothness, e.g. SPARC)."""
    gap_before: np.ndarray
    """True where frames are missing just before (do not differentiate or interpolate across)."""
    pelvic_tilt_velocity_deg_s: np.ndarray | None = None
    """Rate of the pelvic tilt (gyroscope-based); NaN where not given."""
    upper_inclination_velocity_deg_s: np.ndarray | None = None
    """Rate of the upper segment's sagittal inclination (gyroscope-based); NaN where not given."""

    def __post_init__(self) -> None:
        for name in _OPTIONAL:
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.full(self.time_s.shape[0], np.nan))

    def __len__(self) -> int:
        return int(self.time_s.shape[0])

    @staticmethod
    def empty() -> AngleBatch:
        return AngleBatch(**{f.name: np.empty(0, dtype=bool if f.name == "gap_before" else float)
                             for f in fields(AngleBatch)})

    @staticmethod
    def concat(parts: list[AngleBatch]) -> AngleBatch:
        parts = [p for p in parts if len(p)]
        if not parts:
            return AngleBatch.empty()
        if len(parts) == 1:
            return parts[0]
        return AngleBatch(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                             for f in fields(AngleBatch)})

    def take(self, sel: slice | np.ndarray) -> AngleBatch:
        return AngleBatch(**{f.name: getattr(self, f.name)[sel] for f in fields(AngleBatch)})


_OPTIONAL = ("pelvic_tilt_velocity_deg_s", "upper_inclination_velocity_deg_s")
