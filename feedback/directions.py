"""Angles, directions and the baseline range each direction is graded against.

Signs follow docs/contracts.md (zero in neutral standing): flexion_deg > 0 forward,
lateral_bend_deg > 0 to the right, axial_rotation_deg > 0 shoulders turning right,
pelvic_tilt_deg > 0 anterior, upper_inclination_deg > 0 forward. An exercise moves one angle in one
direction; the engines work on the *signed* value `sign * (angle - reference)`, so that "towards
the target" is always positive and one set of rules serves every direction.

Amplitude is graded as a share of the person's own comfortable range in that direction, measured
at baseline (clinical.md, "Grading"), so each direction names the baseline range it uses.
"""

from __future__ import annotations

from dataclasses import dataclass

ANGLES: tuple[str, ...] = (
    "flexion_deg", "lateral_bend_deg", "axial_rotation_deg", "pelvic_tilt_deg",
    "upper_inclination_deg",
)


@dataclass(frozen=True, slots=True)
class Direction:
    """One way of moving one angle."""

    angle: str  # an AngleBatch field
    name: str  # as written in the library files: "forward", "left", "anterior", ...
    sign: int  # +1 when the angle grows in this direction
    range_key: str | None  # Baseline range it is graded against; None: no baseline range
    words: str  # plain words for instructions and cues ("bend forward")


_DIRECTIONS: tuple[Direction, ...] = (
    Direction("flexion_deg", "forward", +1, "flexion", "bend forward"),
    Direction("flexion_deg", "backward", -1, "extension", "bend backward"),
    Direction("lateral_bend_deg", "right", +1, "lateral_bend_right", "bend to the right"),
    Direction("lateral_bend_deg", "left", -1, "lateral_bend_left", "bend to the left"),
    Direction("axial_rotation_deg", "right", +1, "axial_rotation_right", "turn to the right"),
    Direction("axial_rotation_deg", "left", -1, "axial_rotation_left", "turn to the left"),
    Direction("pelvic_tilt_deg", "anterior", +1, "pelvic_tilt_anterior", "tip your pelvis forward"),
    Direction("pelvic_tilt_deg", "posterior", -1, "pelvic_tilt_posterior",
              "tuck your pelvis under"),
    # The upper trunk's inclination has no baseline range of its own: tasks on it (functional
    # tasks) give absolute angles.
    Direction("upper_inclination_deg", "forward", +1, None, "lean forward"),
    Direction("upper_inclination_deg", "backward", -1, None, "lean back"),
)

DIRECTIONS: dict[tuple[str, str], Direction] = {(d.angle, d.name): d for d in _DIRECTIONS}

# Baseline ranges, in the order the baseline protocol measures them.
RANGE_KEYS: tuple[str, ...] = tuple(d.range_key for d in _DIRECTIONS if d.range_key is not None)


def direction(angle: str, name: str) -> Direction:
    """The direction `name` of `angle`; KeyError names what is allowed."""
    try:
        return DIRECTIONS[(angle, name)]
    except KeyError:
        allowed = sorted(n for a, n in DIRECTIONS if a == angle)
        if not allowed:
            raise KeyError(f"unknown angle {angle!r}; allowed: {list(ANGLES)}") from None
        raise KeyError(f"direction of {angle} must be one of {allowed}, got {name!r}") from None


def direction_for_range(range_key: str) -> Direction:
    """The direction a baseline range belongs to."""
    for d in _DIRECTIONS:
        if d.range_key == range_key:
            return d
    raise KeyError(f"unknown range {range_key!r}; allowed: {list(RANGE_KEYS)}")
