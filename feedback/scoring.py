"""Scores and words for one repetition and for a set: knowledge of results.

Why this shape (docs/clinical.md, "Feedback that teaches"): terminal feedback after each
repetition, phrased as one short cue that works read or heard (audio, so the patient need not
watch a screen); one thing at a time, most important first (reaching the target, then holding,
then returning upright, then tempo); and praise on good repetitions, because self-efficacy was one
of the strongest pathways of the RESOLVE effect. Errors are said in whole degrees: the sensors are
not good to a fraction of a degree (clinical.md, "Sensor accuracy").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from feedback.exercise import TargetSpec
from feedback.repetitions import Repetition

Tempo = Literal["fast", "ok", "slow"]


def _rounded(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value


@dataclass(frozen=True, slots=True)
class RepetitionScore:
    """Knowledge of results for one repetition; angles absolute calibrated flexion."""

    target: TargetSpec
    peak_deg: float
    peak_error_deg: float  # peak - target: > 0 past the target, < 0 short of it
    abs_error_deg: float
    overshoot_deg: float  # max(0, peak - target)
    reached: bool  # the peak lies inside the band
    in_band_time_s: float
    longest_hold_s: float
    hold_achieved: bool  # a continuous stay in the band of at least target.hold_s
    time_to_target_s: float | None  # start -> first entry into the band; None if never entered
    duration_s: float  # start -> end crossing on the way back
    start_time_s: float
    peak_time_s: float
    end_time_s: float
    returned_to_neutral: bool | None
    tempo: Tempo | None  # time_to_target against the target's tempo window; None if not judged
    cue_text: str
    cue_audio: str

    @property
    def good(self) -> bool:
        """On target and held: what the set summary counts as a success."""
        return self.reached and self.hold_achieved

    def as_dict(self) -> dict[str, Any]:
        out = {name: _rounded(getattr(self, name)) for name in self.__dataclass_fields__}
        out["target"] = self.target.as_dict()
        out["good"] = self.good
        return out


def _tempo(time_to_target_s: float | None, target: TargetSpec) -> Tempo | None:
    if time_to_target_s is None:
        return None
    lo, hi = target.min_time_to_target_s, target.max_time_to_target_s
    if lo is not None and time_to_target_s < lo:
        return "fast"
    if hi is not None and time_to_target_s > hi:
        return "slow"
    return "ok" if lo is not None or hi is not None else None


def _whole_deg(value_deg: float) -> int:
    """Round half away from zero (4.5 deg past is "5 deg", as people expect, not banker's 4)."""
    return int(math.copysign(math.floor(abs(value_deg) + 0.5), value_deg))


def _deg(n: int, audio: bool) -> str:
    if audio:
        return f"{n} degree" if n == 1 else f"{n} degrees"
    return f"{n}°"


def _cue(score_parts: dict[str, Any], *, audio: bool = False) -> str:
    """One short cue; `audio` spells units and drops symbols for speech synthesis.

    Order: missing the band, then the hold, then the return to upright, then tempo, else praise
    with the signed error (bandwidth-style: the detail is given, but as a success).
    """
    dash = ", " if audio else " — "
    err = _whole_deg(score_parts["peak_error_deg"])
    target: TargetSpec = score_parts["target"]
    if not score_parts["reached"]:
        if err < 0:
            return f"A little further next time: {_deg(-err, audio)} short"
        return f"Not quite so far next time: {_deg(err, audio)} past the target"
    if not score_parts["hold_achieved"]:
        unit = "second" if target.hold_s == 1 else "seconds"
        return f"Good depth{dash}now hold it there for {target.hold_s:g} {unit}"
    if score_parts["returned_to_neutral"] is False:
        return f"On target{dash}then come all the way back upright"
    if score_parts["tempo"] == "fast":
        return f"On target{dash}try a slower, steadier bend"
    if score_parts["tempo"] == "slow":
        return f"On target{dash}you can move a little more freely"
    if err == 0:
        return f"Spot on{dash}right on the target"
    where = "past" if err > 0 else "short of"
    return f"Good{dash}{_deg(abs(err), audio)} {where} the target"


def score_repetition(rep: Repetition) -> RepetitionScore:
    """Score a repetition against the target it started with."""
    target = rep.target
    err = rep.peak_deg - target.target_deg
    reached = target.contains(rep.peak_deg)
    entered = rep.first_in_band_time_s is not None
    hold_achieved = entered and rep.longest_hold_s >= target.hold_s - 1e-9
    time_to_target = rep.first_in_band_time_s - rep.start_time_s if entered else None
    parts: dict[str, Any] = dict(
        target=target,
        peak_deg=rep.peak_deg,
        peak_error_deg=err,
        abs_error_deg=abs(err),
        overshoot_deg=max(0.0, err),
        reached=reached,
        in_band_time_s=rep.in_band_time_s,
        longest_hold_s=rep.longest_hold_s,
        hold_achieved=hold_achieved,
        time_to_target_s=time_to_target,
        duration_s=rep.end_time_s - rep.start_time_s,
        start_time_s=rep.start_time_s,
        peak_time_s=rep.peak_time_s,
        end_time_s=rep.end_time_s,
        returned_to_neutral=rep.returned_to_neutral,
        tempo=_tempo(time_to_target, target),
    )
    return RepetitionScore(**parts, cue_text=_cue(parts), cue_audio=_cue(parts, audio=True))


@dataclass(frozen=True, slots=True)
class SetSummary:
    """Summary feedback after a set: how many hit the target, typical miss, the best one."""

    set_index: int
    reps: int
    reps_per_set: int
    reps_reached: int
    reps_good: int  # reached and held
    interrupted: int  # aborted repetitions (signal gap, stayed bent); not counted as errors
    mean_abs_error_deg: float | None
    mean_error_deg: float | None  # signed: tells "too short" from "too far" on average
    mean_time_to_target_s: float | None  # over repetitions that entered the band
    best_rep: int | None  # 1-based number within the set
    best_abs_error_deg: float | None
    completed: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {name: _rounded(getattr(self, name)) for name in self.__dataclass_fields__}


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize_set(
    scores: Sequence[RepetitionScore],
    *,
    set_index: int,
    reps_per_set: int,
    interrupted: int = 0,
    completed: bool = False,
) -> SetSummary:
    """Summarise the scored repetitions of one set (in order; rep numbers are 1-based)."""
    n = len(scores)
    mean_abs = _mean([s.abs_error_deg for s in scores])
    mean_err = _mean([s.peak_error_deg for s in scores])
    times = [s.time_to_target_s for s in scores if s.time_to_target_s is not None]
    best = min(range(n), key=lambda i: (not scores[i].good, scores[i].abs_error_deg), default=None)
    reached = sum(s.reached for s in scores)
    good = sum(s.good for s in scores)
    summary = dict(
        set_index=set_index, reps=n, reps_per_set=reps_per_set, reps_reached=reached,
        reps_good=good, interrupted=interrupted, mean_abs_error_deg=mean_abs,
        mean_error_deg=mean_err, mean_time_to_target_s=_mean(times),
        best_rep=None if best is None else best + 1,
        best_abs_error_deg=None if best is None else scores[best].abs_error_deg,
        completed=completed,
    )
    return SetSummary(**summary, message=_set_message(summary, scores))


def _set_message(s: dict[str, Any], scores: Sequence[RepetitionScore]) -> str:
    """One line, leading with what went well (confidence), then the one thing to work on."""
    n = s["reps"]
    head = f"Set {s['set_index']}" + (" done" if s["completed"] else " so far")
    if n == 0:
        return f"{head}: no repetitions yet"
    miss = _whole_deg(s["mean_abs_error_deg"])
    line = f"{head}: {s['reps_reached']} of {n} on target, average miss {miss}°"
    best_miss = _whole_deg(scores[s["best_rep"] - 1].abs_error_deg)
    line += f". Best: rep {s['best_rep']} (" + (f"{best_miss}° off)" if best_miss else "spot on)")
    tolerance = _mean([sc.target.tolerance_deg for sc in scores]) or 0.0
    if s["reps_reached"] >= 0.8 * n:
        return line + ". Great work"
    if s["mean_error_deg"] < -tolerance:
        return line + ". Aim a little further next set"
    if s["mean_error_deg"] > tolerance:
        return line + ". Not quite so far next set"
    return line + ". Keep at it"
