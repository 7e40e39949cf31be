"""Scripted angle streams (minimum-jerk bends) through the practice engine: reps, scores, zones."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from feedback.engine import (
    FeedbackEvent,
    FlexionPracticeEngine,
    RepetitionInterrupted,
    RepetitionScored,
    RepetitionStarted,
    SetCompleted,
)
from feedback.exercise import ExerciseError, TargetSpec
from feedback.repetitions import Repetition, RepetitionParams
from feedback.scoring import score_repetition, summarize_set

FS_HZ = 100.0
TARGET = TargetSpec(30.0, 4.0, hold_s=1.0, min_time_to_target_s=0.4, max_time_to_target_s=4.0)
# For TARGET: start threshold 7.5 deg (25 %), end threshold 5.5 deg, band 26-34 deg.


def _mj(tau: np.ndarray) -> np.ndarray:
    """Minimum-jerk position profile 0 -> 1 (Flash & Hogan 1985)."""
    tau = np.clip(tau, 0.0, 1.0)
    return 10 * tau**3 - 15 * tau**4 + 6 * tau**5


@dataclass(frozen=True)
class Bend:
    peak_deg: float
    up_s: float = 2.0
    hold_s: float = 1.2
    down_s: float = 2.0
    rest_s: float = 2.0
    end_deg: float = 0.0  # where the return ends


@dataclass(frozen=True)
class Timing:
    up_start_s: float
    up_end_s: float
    down_start_s: float
    down_end_s: float


def make_stream(
    bends: list[Bend], *, lead_s: float = 1.5, base_deg: float = 0.0, start_deg: float | None = None
) -> tuple[np.ndarray, np.ndarray, list[Timing]]:
    """Flexion over time: optional start level, `lead_s` of standing, then the bends."""
    total = lead_s + sum(b.up_s + b.hold_s + b.down_s + b.rest_s for b in bends)
    t = np.arange(0.0, total, 1.0 / FS_HZ)
    x = np.full_like(t, base_deg)
    level, clock, timings = base_deg, lead_s, []
    if start_deg is not None:  # stream begins away from neutral, moving back in the lead time
        x += (start_deg - base_deg) * (1.0 - _mj((t - 0.5) / (lead_s - 0.5)))
    for b in bends:
        up0, down0 = clock, clock + b.up_s + b.hold_s
        x += (b.peak_deg - level) * _mj((t - up0) / b.up_s)
        x += (b.end_deg - b.peak_deg) * _mj((t - down0) / b.down_s)
        timings.append(Timing(up0, up0 + b.up_s, down0, down0 + b.down_s))
        level, clock = b.end_deg, down0 + b.down_s + b.rest_s
    return t, x, timings


def crossing_s(level_deg: float, b: Bend, start_deg: float, t0: float, dur: float) -> float:
    """Exact time at which a min-jerk move from start_deg to b.peak_deg passes level_deg."""
    f = lambda s: start_deg + (b.peak_deg - start_deg) * _mj(np.array((s - t0) / dur)) - level_deg
    return brentq(f, t0, t0 + dur, xtol=1e-9)


def run(engine: FlexionPracticeEngine, t: np.ndarray, x: np.ndarray, chunk: int = 37) -> list:
    events: list[FeedbackEvent] = []
    for i in range(0, len(t), chunk):
        events += engine.update(t[i:i + chunk], x[i:i + chunk])
    return events


def scored(events: list) -> list[RepetitionScored]:
    return [e for e in events if isinstance(e, RepetitionScored)]


def feed_until(engine: FlexionPracticeEngine, t: np.ndarray, x: np.ndarray, until_s: float,
               done: int = 0) -> int:
    """Feed samples with time <= until_s that were not fed yet; return the new fed count."""
    n = int(np.searchsorted(t, until_s, side="right"))
    engine.update(t[done:n], x[done:n])
    return n


# -- whole sets ---------------------------------------------------------------------------------

def test_whole_set_counts_undershoots_and_overshoots_and_scores_them() -> None:
    peaks = [30.0, 24.0, 37.0, 32.0, 29.0]
    t, x, _ = make_stream([Bend(p) for p in peaks])
    engine = FlexionPracticeEngine(TARGET, reps_per_set=5)
    events = run(engine, t, x)
    kinds = [type(e) for e in events]
    assert kinds == [RepetitionStarted, RepetitionScored] * 5 + [SetCompleted]
    scores = [e.score for e in scored(events)]
    assert [e.rep_number for e in scored(events)] == [1, 2, 3, 4, 5]
    for s, p in zip(scores, peaks):
        assert s.peak_error_deg == pytest.approx(p - 30.0, abs=0.1)
        assert s.abs_error_deg == pytest.approx(abs(p - 30.0), abs=0.1)
        assert s.overshoot_deg == pytest.approx(max(0.0, p - 30.0), abs=0.1)
    assert [s.reached for s in scores] == [True, False, False, True, True]
    assert [s.cue_text for s in scores] == [
        "Spot on — right on the target",
        "A little further next time: 6° short",
        "Not quite so far next time: 7° past the target",
        "Good — 2° past the target",
        "Good — 1° short of the target",
    ]
    assert scores[1].cue_audio == "A little further next time: 6 degrees short"
    assert scores[4].cue_audio == "Good, 1 degree short of the target"
    summary = events[-1].summary
    assert (summary.set_index, summary.reps, summary.reps_reached) == (1, 5, 3)
    assert summary.completed
    assert summary.mean_abs_error_deg == pytest.approx(16.0 / 5, abs=0.05)
    assert summary.mean_error_deg == pytest.approx(2.0 / 5, abs=0.05)
    assert summary.best_rep == 1
    expected_tt = np.mean([s.time_to_target_s for s in scores if s.time_to_target_s is not None])
    assert summary.mean_time_to_target_s == pytest.approx(expected_tt)
    assert summary.message.startswith("Set 1 done: 3 of 5 on target, average miss 3°. Best: rep 1")
    # The engine moves on to the next set.
    assert engine.state.set_index == 2 and engine.state.rep_count == 0
    assert engine.completed_sets == (summary,)
    assert engine.summary().reps == 0 and engine.summary().set_index == 2


def test_second_set_follows_the_first() -> None:
    t, x, _ = make_stream([Bend(30.0)] * 5)
    engine = FlexionPracticeEngine(TARGET, reps_per_set=2)
    events = run(engine, t, x)
    sets = [e.summary.set_index for e in events if isinstance(e, SetCompleted)]
    assert sets == [1, 2]
    assert engine.state.rep_count == 1 and engine.state.set_index == 3
    assert engine.summary().message.startswith("Set 3 so far: 1 of 1 on target")


def test_time_to_target_duration_and_hold_match_the_analytic_bend() -> None:
    b = Bend(30.0, up_s=2.0, hold_s=1.2, down_s=2.0)
    t, x, (tm,) = make_stream([b])
    (ev,) = scored(run(FlexionPracticeEngine(TARGET, 5), t, x))
    s = ev.score
    start = crossing_s(7.5, b, 0.0, tm.up_start_s, b.up_s)
    enter = crossing_s(26.0, b, 0.0, tm.up_start_s, b.up_s)
    down = Bend(0.0)  # the return: from 30 to 0
    leave = crossing_s(26.0, down, 30.0, tm.down_start_s, b.down_s)
    end = crossing_s(5.5, down, 30.0, tm.down_start_s, b.down_s)
    assert s.start_time_s == pytest.approx(start, abs=0.005)
    assert s.time_to_target_s == pytest.approx(enter - start, abs=0.01)
    assert s.duration_s == pytest.approx(end - start, abs=0.01)
    assert s.in_band_time_s == pytest.approx(leave - enter, abs=0.01)
    assert s.longest_hold_s == pytest.approx(leave - enter, abs=0.01)
    assert s.hold_achieved and s.good and s.returned_to_neutral is True and s.tempo == "ok"
    assert tm.up_end_s <= s.peak_time_s <= tm.down_start_s


def test_hold_shorter_than_asked_is_reached_but_not_held() -> None:
    target = TargetSpec(30.0, 4.0, hold_s=2.0)
    t, x, _ = make_stream([Bend(30.0, hold_s=0.2)])
    (ev,) = scored(run(FlexionPracticeEngine(target, 5), t, x))
    assert ev.score.reached and not ev.score.hold_achieved and not ev.score.good
    assert ev.score.longest_hold_s < 2.0
    assert ev.score.cue_text == "Good depth — now hold it there for 2 seconds"
    no_hold = TargetSpec(30.0, 4.0, hold_s=0.0)
    (ev,) = scored(run(FlexionPracticeEngine(no_hold, 5), t, x))
    assert ev.score.hold_achieved


@pytest.mark.parametrize(("up_s", "tempo", "cue"), [
    (0.8, "fast", "On target — try a slower, steadier bend"),
    (14.0, "slow", "On target — you can move a little more freely"),
])
def test_tempo_outside_the_window_is_named_once_the_target_is_reached(
    up_s: float, tempo: str, cue: str
) -> None:
    t, x, _ = make_stream([Bend(30.0, up_s=up_s)])
    (ev,) = scored(run(FlexionPracticeEngine(TARGET, 5), t, x))
    assert ev.score.tempo == tempo and ev.score.cue_text == cue


# -- zones and live state ------------------------------------------------------------------------

def test_zones_and_hold_progress_at_known_instants() -> None:
    bends = [Bend(30.0, hold_s=1.5), Bend(40.0), Bend(20.0)]
    t, x, tm = make_stream(bends)
    engine = FlexionPracticeEngine(TARGET, 5)
    assert engine.state.zone == "rest" and engine.state.flexion_deg is None
    n = feed_until(engine, t, x, 1.0)
    assert engine.state.zone == "rest" and engine.state.hold_progress == 0.0
    rise_15 = crossing_s(15.0, bends[0], 0.0, tm[0].up_start_s, 2.0)
    n = feed_until(engine, t, x, rise_15 + 0.005, n)
    assert engine.state.zone == "below" and engine.state.in_repetition
    enter = crossing_s(26.0, bends[0], 0.0, tm[0].up_start_s, 2.0)
    n = feed_until(engine, t, x, enter + 0.5, n)
    assert engine.state.zone == "in"
    assert engine.state.hold_progress == pytest.approx(0.5, abs=0.02)
    n = feed_until(engine, t, x, enter + 1.05, n)
    assert engine.state.hold_progress == 1.0
    fall_15 = crossing_s(15.0, Bend(0.0), 30.0, tm[0].down_start_s, 2.0)
    n = feed_until(engine, t, x, fall_15 + 0.005, n)  # on the way back: below, held stays 1
    assert engine.state.zone == "below" and engine.state.hold_progress == 1.0
    n = feed_until(engine, t, x, tm[0].down_end_s + 1.0, n)
    assert engine.state.zone == "rest" and engine.state.hold_progress == 0.0
    assert engine.state.rep_count == 1
    n = feed_until(engine, t, x, tm[1].up_end_s + 0.5, n)
    assert engine.state.zone == "over" and engine.state.hold_progress == 0.0
    n = feed_until(engine, t, x, tm[2].up_end_s + 0.5, n)  # holding at 20 deg, short of 26
    assert engine.state.zone == "below"
    live = engine.state.as_dict()
    assert live["zone"] == "below" and live["target"]["low_deg"] == 26.0
    assert live["rep_count"] == 2 and live["reps_per_set"] == 5 and live["signal_ok"] is True


def test_no_movement_gives_no_reps_and_rest() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(0.0, 20.0, 1.0 / FS_HZ)
    x = rng.normal(0.0, 0.3, t.size)
    engine = FlexionPracticeEngine(TARGET, 5)
    assert run(engine, t, x) == []
    assert engine.state.zone == "rest" and engine.state.rep_count == 0
    assert engine.summary().reps == 0
    assert engine.summary().message == "Set 1 so far: no repetitions yet"


def test_extension_is_not_counted_as_flexion() -> None:
    t, x, tm = make_stream([Bend(-30.0)] * 4)
    engine = FlexionPracticeEngine(TARGET, 5)
    assert run(engine, t, x) == []
    engine2 = FlexionPracticeEngine(TARGET, 5)
    feed_until(engine2, t, x, tm[0].up_end_s + 0.5)
    assert engine2.state.zone == "rest" and engine2.state.flexion_deg == pytest.approx(-30.0)


# -- robustness: sway, noise, glitches, hysteresis, baseline ---------------------------------------

def test_sway_and_noise_around_the_start_threshold_do_not_make_reps() -> None:
    # Target 20 deg: start 5 deg above the baseline, confirmed 3 deg further. Sway +-2.5 deg plus
    # noise: the peak-to-peak swing exceeds the start threshold (so the baseline, wherever in the
    # swing it settles, is crossed) but stays under start + minimum excursion.
    target = TargetSpec(20.0, 4.0, hold_s=1.0)
    rng = np.random.default_rng(7)
    t = np.arange(0.0, 40.0, 1.0 / FS_HZ)
    x = 2.5 * np.sin(2 * np.pi * 0.25 * t) + rng.normal(0.0, 0.4, t.size)
    assert 5.0 < np.ptp(x) < 8.0
    assert run(FlexionPracticeEngine(target, 5), t, x) == []


def test_minimum_excursion_past_the_start_threshold() -> None:
    target = TargetSpec(20.0, 4.0, hold_s=1.0)  # start 5 deg, confirm at 5 + 3 = 8 deg
    t, x, _ = make_stream([Bend(7.0)] * 3)
    assert run(FlexionPracticeEngine(target, 5), t, x) == []
    t, x, _ = make_stream([Bend(9.0)] * 3)
    events = run(FlexionPracticeEngine(target, 5), t, x)
    assert [e.score.reached for e in scored(events)] == [False] * 3


def test_minimum_duration_rejects_glitches() -> None:
    t, x, _ = make_stream([Bend(25.0, up_s=0.05, hold_s=0.1, down_s=0.05)])
    assert run(FlexionPracticeEngine(TARGET, 5), t, x) == []
    t, x, _ = make_stream([Bend(25.0, up_s=0.3, hold_s=0.3, down_s=0.3)])
    assert len(scored(run(FlexionPracticeEngine(TARGET, 5), t, x))) == 1


def test_hysteresis_a_partial_return_does_not_split_the_repetition() -> None:
    # Back down to 6.5 deg: below the 7.5 deg start threshold but above the 5.5 deg end threshold.
    bends = [Bend(30.0, rest_s=1.0, end_deg=6.5), Bend(30.0)]
    t, x, _ = make_stream(bends)
    events = run(FlexionPracticeEngine(TARGET, 5), t, x)
    assert [type(e) for e in events] == [RepetitionStarted, RepetitionScored]
    bends = [Bend(30.0, rest_s=1.0, end_deg=5.0), Bend(30.0)]  # below the end threshold: two
    t, x, _ = make_stream(bends)
    assert len(scored(run(FlexionPracticeEngine(TARGET, 5), t, x))) == 2


def test_start_threshold_is_relative_to_the_resting_baseline() -> None:
    # Standing at 2.5 deg: the start is at 2.5 + 7.5 deg; 12 deg is only 9.5 deg of movement,
    # short of the 7.5 + 3 deg needed to confirm a repetition.
    t, x, _ = make_stream([Bend(12.0, end_deg=2.5)], base_deg=2.5)
    assert run(FlexionPracticeEngine(TARGET, 5), t, x) == []
    b = Bend(30.0, end_deg=2.5)
    t, x, (tm,) = make_stream([b], base_deg=2.5)
    (ev,) = scored(run(FlexionPracticeEngine(TARGET, 5), t, x))
    start = crossing_s(10.0, b, 2.5, tm.up_start_s, 2.0)
    assert ev.score.start_time_s == pytest.approx(start, abs=0.005)
    assert ev.score.peak_error_deg == pytest.approx(0.0, abs=0.1)  # scores stay absolute
    assert ev.score.returned_to_neutral is True


def test_baseline_moves_at_most_3_deg_from_calibrated_neutral() -> None:
    # Standing at 6 deg (calibration off, or a flexed posture): the baseline stops at 3 deg, so
    # the start is at 10.5 deg and the bend to 30 still counts.
    b = Bend(30.0, end_deg=6.0)
    t, x, (tm,) = make_stream([b], base_deg=6.0)
    (ev,) = scored(run(FlexionPracticeEngine(TARGET, 5), t, x))
    start = crossing_s(10.5, b, 6.0, tm.up_start_s, 2.0)
    assert ev.score.start_time_s == pytest.approx(start, abs=0.005)
    # Leaning back to -8 deg for a while does not drop the start below -3 + 7.5 deg.
    t, x, _ = make_stream([Bend(-8.0, up_s=1.0, hold_s=3.0, down_s=1.0, rest_s=0.0),
                           Bend(3.5, up_s=1.0, hold_s=2.0, end_deg=0.0)], lead_s=0.0)
    assert run(FlexionPracticeEngine(TARGET, 5), t, x) == []


def test_baseline_follows_a_brief_lean_only_slowly() -> None:
    # A 1.5 s lean back to -3 deg moves the baseline less than 1 deg (time constant 3 s), so the
    # following bump to 8 deg is under 7.5 + 3 deg above it; a baseline jumping to -3 would
    # count it.
    t, x, _ = make_stream([Bend(-3.0, up_s=0.5, hold_s=1.5, down_s=0.5, rest_s=0.0),
                           Bend(8.0, up_s=1.0, hold_s=1.0, end_deg=0.0)], lead_s=3.0)
    engine = FlexionPracticeEngine(TARGET, 5)
    assert run(engine, t, x) == []


def test_stream_starting_mid_bend_counts_only_after_rest() -> None:
    t, x, _ = make_stream([Bend(30.0)], lead_s=3.0, start_deg=30.0)
    events = run(FlexionPracticeEngine(TARGET, 5), t, x)
    assert len(scored(events)) == 1 and scored(events)[0].score.start_time_s > 3.0


@pytest.mark.parametrize(("end_deg", "rest_s", "returned", "cue"), [
    (0.0, 2.0, True, "Spot on — right on the target"),
    (-10.0, 3.0, False, "On target — then come all the way back upright"),  # into extension
    (5.0, 3.0, False, "On target — then come all the way back upright"),  # stops short of upright
])
def test_return_to_neutral(end_deg: float, rest_s: float, returned: bool, cue: str) -> None:
    t, x, _ = make_stream([Bend(30.0, end_deg=end_deg, rest_s=rest_s)])
    (ev,) = scored(run(FlexionPracticeEngine(TARGET, 5), t, x))
    assert ev.score.returned_to_neutral is returned and ev.score.cue_text == cue
    if not returned:  # judged after the return timeout
        assert ev.time_s == pytest.approx(ev.score.end_time_s + 2.0, abs=0.02)


def test_bending_again_without_settling_is_not_a_return_to_neutral() -> None:
    # Back to 5 deg (past the end threshold, not within 4 deg of upright), then straight down again.
    t, x, tm = make_stream([Bend(30.0, end_deg=5.0, rest_s=0.0), Bend(30.0)])
    events = run(FlexionPracticeEngine(TARGET, 5), t, x)
    first, second = scored(events)
    assert (first.score.returned_to_neutral, second.score.returned_to_neutral) == (False, True)
    assert first.time_s < first.score.end_time_s + 2.0  # judged at the new start, not the timeout
    assert first.time_s == pytest.approx(second.score.start_time_s, abs=0.011)


def test_staying_bent_too_long_interrupts_without_scoring() -> None:
    params = RepetitionParams(max_duration_s=5.0)
    t, x, _ = make_stream([Bend(30.0, hold_s=8.0), Bend(30.0)])
    engine = FlexionPracticeEngine(TARGET, 5, params=params)
    events = run(engine, t, x)
    assert [type(e) for e in events] == [RepetitionStarted, RepetitionInterrupted,
                                         RepetitionStarted, RepetitionScored]
    assert events[1].reason == "too_long" and engine.summary().interrupted == 1


# -- gaps ----------------------------------------------------------------------------------------

def test_nan_gap_mid_repetition_interrupts_it_and_it_is_not_an_error() -> None:
    t, x, tm = make_stream([Bend(30.0), Bend(30.0, hold_s=2.0), Bend(31.0)])
    gap = (t >= tm[1].up_end_s + 0.2) & (t < tm[1].up_end_s + 0.7)
    x[gap] = np.nan
    engine = FlexionPracticeEngine(TARGET, 5)
    events = run(engine, t, x)
    assert [type(e) for e in events] == [RepetitionStarted, RepetitionScored, RepetitionStarted,
                                         RepetitionInterrupted, RepetitionStarted, RepetitionScored]
    intr = events[3]
    assert intr.reason == "signal_gap" and intr.rep_number == 2
    assert intr.time_s == pytest.approx(tm[1].up_end_s + 0.2 + 0.2, abs=0.02)  # after max_gap_s
    assert [e.rep_number for e in scored(events)] == [1, 2]
    summary = engine.summary()
    assert (summary.reps, summary.interrupted, summary.reps_reached) == (2, 1, 2)
    assert summary.mean_abs_error_deg == pytest.approx(0.5, abs=0.1)


def test_missing_samples_without_nan_are_a_gap_too() -> None:
    t, x, tm = make_stream([Bend(30.0, hold_s=2.0)])
    keep = ~((t >= tm[0].up_end_s + 0.2) & (t < tm[0].up_end_s + 0.7))
    events = run(FlexionPracticeEngine(TARGET, 5), t[keep], x[keep])
    assert [type(e) for e in events] == [RepetitionStarted, RepetitionInterrupted]


def test_short_dropout_is_bridged_and_scored() -> None:
    t, x, tm = make_stream([Bend(30.0, hold_s=2.0)])
    x[(t >= tm[0].up_end_s + 0.5) & (t < tm[0].up_end_s + 0.55)] = np.nan
    engine = FlexionPracticeEngine(TARGET, 5)
    n = feed_until(engine, t, x, tm[0].up_end_s + 0.52)
    assert not engine.state.signal_ok and engine.state.zone == "in"
    events = engine.update(t[n:], x[n:])
    (ev,) = scored(events)
    assert ev.score.peak_error_deg == pytest.approx(0.0, abs=0.1) and ev.score.hold_achieved


# -- target changes ------------------------------------------------------------------------------

def test_target_change_mid_set_applies_to_the_next_repetition_and_the_zone_at_once() -> None:
    t, x, tm = make_stream([Bend(30.0), Bend(30.0), Bend(40.0)])
    engine = FlexionPracticeEngine(TARGET, 4)
    n = feed_until(engine, t, x, tm[1].up_end_s + 0.5)
    assert engine.state.zone == "in"
    new = TargetSpec(40.0, 4.0, hold_s=1.0)
    engine.set_target(new)
    assert engine.state.zone == "below" and engine.state.target == new
    events = engine.update(t[n:], x[n:])
    started = [e for e in events if isinstance(e, RepetitionStarted)]
    assert [e.target for e in started] == [new]
    s2, s3 = (e.score for e in scored(events))
    assert s2.target == TARGET and s2.reached and s2.peak_error_deg == pytest.approx(0.0, abs=0.1)
    assert s3.target == new and s3.reached and s3.peak_error_deg == pytest.approx(0.0, abs=0.1)
    assert [e.rep_number for e in scored(events)] == [2, 3] and engine.state.rep_count == 3


# -- chunking ------------------------------------------------------------------------------------

def _chunk_stream() -> tuple[np.ndarray, np.ndarray]:
    t, x, tm = make_stream([Bend(30.0), Bend(25.0, hold_s=2.0), Bend(36.0, up_s=0.8),
                            Bend(31.0, end_deg=-8.0), Bend(29.0)])
    x = x + np.random.default_rng(3).normal(0.0, 0.4, t.size)
    x[(t >= tm[1].up_end_s + 0.5) & (t < tm[1].up_end_s + 1.0)] = np.nan  # interrupts rep 2
    x[(t >= tm[3].up_end_s + 0.3) & (t < tm[3].up_end_s + 0.35)] = np.nan  # bridged
    return t, x


_T, _X = _chunk_stream()


def _all_at_once() -> tuple[list[dict], dict]:
    engine = FlexionPracticeEngine(TARGET, 3)
    return [e.as_dict() for e in engine.update(_T, _X)], engine.state.as_dict()


_REFERENCE = _all_at_once()


def test_reference_stream_for_chunking_is_nontrivial() -> None:
    types = [e["type"] for e in _REFERENCE[0]]
    assert types.count("repetition_scored") == 4 and types.count("repetition_interrupted") == 1
    assert types.count("set_completed") == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=600), min_size=1, max_size=40))
def test_events_do_not_depend_on_chunking(sizes: list[int]) -> None:
    """Cut the stream at random places (empty batches too): same events, same final state."""
    engine = FlexionPracticeEngine(TARGET, 3)
    events, i, k = [], 0, 0
    while i < len(_T):
        n = sizes[k % len(sizes)] if k < 1000 else len(_T)
        events += [e.as_dict() for e in engine.update(_T[i:i + n], _X[i:i + n])]
        i, k = i + n, k + 1
    assert (events, engine.state.as_dict()) == _REFERENCE


def test_sample_by_sample_equals_one_batch() -> None:
    engine = FlexionPracticeEngine(TARGET, 3)
    events = []
    for i in range(len(_T)):
        events += [e.as_dict() for e in engine.update(_T[i:i + 1], _X[i:i + 1])]
    assert (events, engine.state.as_dict()) == _REFERENCE


# -- scoring units, messages, JSON, validation -----------------------------------------------------

def _rep(peak_deg: float, *, target: TargetSpec = TARGET, hold_s: float = 1.5) -> Repetition:
    entered = target.contains(peak_deg) or peak_deg > target.high_deg
    return Repetition(target, 0.0, 10.0, 10.3, 10.8 if entered else None, 11.5, peak_deg, 13.0,
                      hold_s if entered else 0.0, hold_s if entered else 0.0, True, 13.4)


@pytest.mark.parametrize(("peak", "text"), [
    (30.2, "Spot on — right on the target"),
    (31.6, "Good — 2° past the target"),
    (28.4, "Good — 2° short of the target"),
    (24.0, "A little further next time: 6° short"),
    (34.5, "Not quite so far next time: 5° past the target"),
])
def test_cue_wording_and_sign(peak: float, text: str) -> None:
    s = score_repetition(_rep(peak))
    assert s.cue_text == text
    assert np.sign(s.peak_error_deg) == np.sign(peak - 30.0)
    assert "°" not in s.cue_audio and "—" not in s.cue_audio


def test_set_message_praises_good_sets_and_names_the_direction_otherwise() -> None:
    def message(peaks: tuple[float, ...]) -> str:
        scores = [score_repetition(_rep(p)) for p in peaks]
        return summarize_set(scores, set_index=1, reps_per_set=5, completed=True).message

    assert message((30.0, 31.0, 29.0, 32.0, 24.0)).endswith("Great work")
    assert message((22.0, 23.0, 30.0)).endswith("Aim a little further next set")
    assert message((36.0, 37.0, 30.0)).endswith("Not quite so far next set")
    best = summarize_set([score_repetition(_rep(p)) for p in (24.0, 31.0, 30.5)], set_index=1,
                         reps_per_set=5)
    assert best.best_rep == 3 and best.best_abs_error_deg == pytest.approx(0.5)


def test_everything_the_engine_says_is_json() -> None:
    t, x, _ = make_stream([Bend(30.0), Bend(20.0), Bend(30.0)])
    x[300:360] = np.nan
    engine = FlexionPracticeEngine(TARGET, 2)
    events = run(engine, t, x)
    payload = json.loads(json.dumps([e.as_dict() for e in events] + [engine.state.as_dict()]))
    assert {p.get("type") for p in payload[:-1]} >= {"repetition_started", "repetition_scored",
                                                     "set_completed"}
    assert payload[-1]["zone"] == "rest"


def test_from_level_uses_the_ladder() -> None:
    engine = FlexionPracticeEngine.from_level(3, 50.0)
    assert (engine.target.target_deg, engine.target.tolerance_deg) == (25.0, 6.0)
    assert engine.state.reps_per_set == 8
    with pytest.raises(ExerciseError):
        FlexionPracticeEngine.from_level(1, 5.0)


def test_update_input_validation() -> None:
    engine = FlexionPracticeEngine(TARGET, 5)
    assert engine.update(np.array([]), np.array([])) == []
    with pytest.raises(ValueError, match="equal length"):
        engine.update(np.array([0.0, 0.01]), np.array([0.0]))
    with pytest.raises(ValueError, match="increase"):
        engine.update(np.array([0.0, 0.0]), np.array([0.0, 0.0]))
    with pytest.raises(ValueError, match="finite"):
        engine.update(np.array([np.nan]), np.array([0.0]))
    engine.update(np.array([1.0]), np.array([0.0]))
    with pytest.raises(ValueError, match="across batches"):
        engine.update(np.array([1.0]), np.array([0.0]))
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ExerciseError, match="reps_per_set"):
            FlexionPracticeEngine(TARGET, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        RepetitionParams(hysteresis_deg=0.0)
