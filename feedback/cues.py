"""Words for the patient: every cue as text and as audio.

clinical.md "Feedback that teaches": a display should not need the patient to look at it all the
time, so every cue is also written for speech (units spelled out, no symbols); feedback on good
repetitions too (self-efficacy was one of RESOLVE's strongest pathways, clinical.md "The
treatment"); one thing at a time, the most important first. Errors are said in whole degrees:
the sensors are not better than about a degree (clinical.md "Sensor accuracy"). Smoothness has
no published norms for trunk movement in LBP (clinical.md "Smoothness"), so it is reported as a
number for the therapist but never judged in words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from feedback.library import Exercise
from feedback.trial import TrialResult

_OPPOSITE = {"forward": "back", "backward": "forward", "left": "right", "right": "left",
             "anterior": "back", "posterior": "forward"}
_SEGMENT = {"upper_inclination_deg": "chest", "pelvic_tilt_deg": "pelvis",
            "flexion_deg": "lower back", "lateral_bend_deg": "trunk",
            "axial_rotation_deg": "trunk"}


@dataclass(frozen=True, slots=True)
class Cue:
    text: str
    audio: str

    def as_dict(self) -> dict[str, str]:
        return {"text": self.text, "audio": self.audio}


def whole_deg(value_deg: float) -> int:
    """Round half away from zero (4.5 degrees is "5", as people expect)."""
    return int(math.copysign(math.floor(abs(value_deg) + 0.5), value_deg))


def _deg(n: int, audio: bool) -> str:
    if audio:
        return f"{n} degree" if n == 1 else f"{n} degrees"
    return f"{n}°"


def _both(fmt: str, n: int | None = None) -> Cue:
    """`fmt` with {deg} filled for text and audio, and the dash made speakable."""
    text = fmt.replace("{deg}", _deg(n, False)) if n is not None else fmt
    audio = fmt.replace("{deg}", _deg(n, True)) if n is not None else fmt
    return Cue(text.replace(" | ", " — "), audio.replace(" | ", ", "))


def result_cue(result: TrialResult, exercise: Exercise) -> Cue:
    """Knowledge of results with numbers, positive first when the repetition was good."""
    n = whole_deg(result.error_deg)
    pattern = result.pattern
    if pattern == "functional":
        if result.in_tolerance:
            return _both("Good | your lower back stayed within its limit")
        return _both("Your lower back bent {deg} past its limit | bend more at the hips", abs(n))
    if pattern == "dissociate" and result.still_max_deviation_deg is not None and (
            result.still_max_deviation_deg > (result.still_limit_deg or math.inf)):
        seg = _SEGMENT.get(exercise.still_angle or "", "other segment")
        return _both(f"Your {seg} moved {{deg}} | try to keep it still",
                     whole_deg(result.still_max_deviation_deg))
    if pattern == "track":
        lead = "Good tracking" if result.in_tolerance else "Stay closer to the target"
        return _both(f"{lead} | on average {{deg}} away from it", whole_deg(result.abs_error_deg))
    if pattern == "hold":
        if not result.hold_achieved:
            return _both("Find the position and stay there a little longer")
        if n == 0:
            return _both("Spot on | well held")
        way = exercise.direction.name if n > 0 else _OPPOSITE[exercise.direction.name]
        lead = "Well held" if result.in_tolerance else "Held"
        return _both(f"{lead} | {{deg}} too far {way}", abs(n))
    if pattern == "reproduce" and not result.hold_achieved:
        return _both("Hold still for a moment where you think the target is")
    if not result.in_tolerance and result.hold_achieved is False and abs(n) <= (
            result.tolerance_deg or 0):
        return _both("Good depth | now hold it there a little longer")
    if n == 0:
        return _both("Spot on | right on the target")
    where = "past" if n > 0 else "short of"
    if result.in_tolerance:
        return _both(f"Good | {{deg}} {where} the target", abs(n))
    if n < 0:
        return _both("A little further next time | {deg} short", abs(n))
    return _both("Not quite so far next time | {deg} past the target", abs(n))


def praise_cue(result: TrialResult) -> Cue:
    """Bandwidth feedback inside the tolerance: positive, no number."""
    if result.pattern == "functional":
        return _both("Good | nicely controlled")
    return _both("Good | inside the band")


def performance_cue(result: TrialResult) -> Cue | None:
    """Knowledge of performance: one remark on how the movement was made, or None."""
    if result.tempo == "fast":
        return _both("Try a slower, steadier movement")
    if result.tempo == "slow":
        return _both("You can move a little more freely")
    share = result.lumbar_share
    if share is not None:
        pct = int(round(100 * share))
        return Cue(f"About {pct} % of that movement came from your lower back, the rest from "
                   "your hips",
                   f"About {pct} percent of that movement came from your lower back, the rest "
                   "from your hips")
    return None


_TASK_CUES = {
    "wrong_direction": "Other way | {words}",
    "limit_crossed": "Careful | your lower back is at its limit",
    "present_again": "Let's find the target again | reach it and hold it there",
    "reproduce_now": "Now without the guide | find the same spot and hold still there",
    "too_small": "That was a small one | it did not count as a full movement",
    "idle": "Whenever you are ready | {words}",
    "start_found": "Good starting position | off you go",
    "signal_gap": "Lost the sensor signal, so that one doesn't count | go back to the start",
    "too_long": "That one doesn't count | come back to the start, then go again when ready",
    "no_hold": "That one doesn't count | go back to the start",
}


def task_cue(kind: str, exercise: Exercise) -> Cue:
    fmt = _TASK_CUES.get(kind, "Go back to the start")
    return _both(fmt.replace("{words}", exercise.direction.words))


def summary_cue(results: Sequence[TrialResult], label: str) -> Cue:
    """Summary over several repetitions: leads with what went well."""
    n = len(results)
    if n == 0:
        return _both(f"{label}: no repetitions yet")
    good = sum(r.in_tolerance for r in results)
    mean_abs = sum(r.abs_error_deg for r in results) / n
    base = f"{label}: {good} of {n} inside the tolerance"
    if results[0].pattern == "functional":
        tail = "Great work" if good >= 0.8 * n else "Keep the movement in your hips"
        return _both(f"{base}. {tail}")
    tail = "Great work" if good >= 0.8 * n else "Keep at it"
    return _both(f"{base}, average miss {{deg}}. {tail}", whole_deg(mean_abs))


def estimate_cue(estimate: str, actual: str) -> Cue:
    if estimate == actual:
        return _both("You judged that one right")
    words = {"short": "short of the target", "on_target": "on target", "past": "past the target",
             "within": "within the limit", "over": "over the limit"}
    return _both(f"You thought {words.get(estimate, estimate)} | it was "
                 f"{words.get(actual, actual)}")
