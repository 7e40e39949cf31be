"""A patient's history over sessions and weeks: pure aggregation of what is already stored.

Two sources, both written by the live service and read here as plain data (no I/O in this
module; `api/history_reader.py` reads them):

- the **recordings** (`recordings/`): per session its events (calibration, every repetition with
  its result, the exercises and levels, pain rated during the session), patient reports and the
  lumbar angles computed live (or by a re-analysis);
- the **practice record** (`api/practice_store.py`): per session the pain before and after, the
  outcome of each block, the progression decisions, the baselines and the RMDQ answers.

What a session contributes (`session_metrics`):

- *range of motion*: the furthest the patient went in each direction during the session
  (`peak_deg`, one value per baseline direction), taken as the angle exceeded for at least
  `PEAK_MIN_TIME_S` in total, so one noisy sample cannot make a peak; the comfortable forward
  bend measured by the session's calibration (`comfortable_flexion_deg`); the ranges a baseline
  assessment measured (`baseline_ranges_deg`);
- *precision*: mean absolute target (or repositioning) error of the counted repetitions, and of
  those in the retention blocks without feedback (the test of what was learnt: Winstein &
  Schmidt 1990; clinical.md "Feedback that teaches"), and the share inside the tolerance;
- *smoothness*: the median SPARC (Balasubramanian et al., J NeuroEng Rehabil 12:112, 2015) and
  LDLJ (Hogan & Sternad, J Mot Behav 41(6), 2009) of the session's repetitions, as the practice
  engine scored them, or computed here (`processing.smoothness`) on the stored lumbar angular
  speed of each repetition when the engine did not (the single flexion exercise);
- *pain* before and after (0–10 NRS), and the progression decisions taken on the session.

`build_history` merges the two sources per session id (a practice session whose recording is
missing still shows its pain and block results), groups sessions by programme week (week 0 starts
on the practice record's start date, as the RMDQ schedule does) and adds the RMDQ scores.
`history_csv` writes either table as CSV with the unit in every column name.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from feedback.directions import DIRECTIONS, RANGE_KEYS

HISTORY_VERSION = 1
PEAK_MIN_TIME_S = 0.1  # a peak must be exceeded for this long in total (not one noisy sample)
# Events that carry one counted repetition (practice program, single flexion exercise, offline
# segmentation of a re-analysis).
REPETITION_EVENTS = ("repetition_recorded", "repetition_scored", "repetition")
CLASSIC_EXERCISE = "flexion_classic"  # the single flexion exercise (no program)
CLASSIC_NAME = "Bend forward to the target (single exercise)"
# offline segmentation's directions (processing/segmentation.py) -> baseline range keys
SEGMENT_RANGE = {"flexion": "flexion", "extension": "extension",
                 "lateral_right": "lateral_bend_right", "lateral_left": "lateral_bend_left",
                 "rotation_right": "axial_rotation_right", "rotation_left": "axial_rotation_left"}
# range key -> (angle column, sign): the baseline directions (feedback/directions.py)
RANGE_ANGLES: dict[str, tuple[str, int]] = {
    d.range_key: (d.angle, d.sign) for d in DIRECTIONS.values() if d.range_key is not None}


@dataclass(frozen=True, slots=True)
class ExerciseInfo:
    """What the history needs of a library exercise."""

    name: str
    range_key: str | None  # the baseline direction it moves in (None: functional tasks)
    pattern: str = ""


@dataclass(frozen=True, slots=True)
class StoredSession:
    """One stored session as `api/history_reader.py` hands it over."""

    id: str
    started_at: str  # UTC, ISO 8601
    ended_at: str | None
    status: str  # live / completed / interrupted
    source: str
    duration_s: float | None
    events: tuple[tuple[float | None, str, Mapping[str, Any]], ...] = ()  # (time_s, type, payload)
    reports: tuple[tuple[str, Mapping[str, Any]], ...] = ()  # (kind, payload)
    angles: Mapping[str, np.ndarray] = field(default_factory=dict)


# ------------------------------------------------------------------------------ small helpers
def _num(x: Any) -> float | None:
    """A finite float, or None."""
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _round(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def _pain(x: Any) -> int | None:
    v = _num(x)
    return int(round(v)) if v is not None and 0 <= v <= 10 else None


def session_date(started_at: str) -> date | None:
    """The (UTC) calendar date of an ISO 8601 time, None if it cannot be read."""
    try:
        return datetime.fromisoformat(started_at).date()
    except (TypeError, ValueError):
        try:
            return date.fromisoformat(str(started_at)[:10])
        except ValueError:
            return None


def robust_peak_deg(time_s: np.ndarray, values_deg: np.ndarray,
                    min_time_s: float = PEAK_MIN_TIME_S) -> float | None:
    """The largest value the signal stayed at or above for at least `min_time_s` in total:
    the k-th largest finite sample with k = ceil(min_time_s / median sample interval). One or
    two spikes cannot make a peak; a held end position is found whatever its length."""
    v = np.asarray(values_deg, dtype=float)
    t = np.asarray(time_s, dtype=float)
    ok = np.isfinite(v)
    if t.shape == v.shape:
        ok &= np.isfinite(t)
    v = v[ok]
    if v.size == 0:
        return None
    dt = np.diff(t[ok]) if t.shape[0] == ok.shape[0] else np.array([])
    dt = dt[dt > 0]
    step = float(np.median(dt)) if dt.size else 0.01
    k = max(1, min(v.size, int(math.ceil(min_time_s / step - 1e-9))))
    return float(np.partition(v, v.size - k)[v.size - k])


def _smoothness(time_s: np.ndarray, speed: np.ndarray, start_s: float,
                end_s: float) -> tuple[float | None, float | None]:
    """SPARC and LDLJ of the stored lumbar angular speed between start and end."""
    from processing.smoothness import ldlj, sparc

    sel = (time_s >= start_s) & (time_s <= end_s) & np.isfinite(speed)
    if int(sel.sum()) < 8:
        return None, None
    t = time_s[sel]
    dt = np.diff(t)
    dt = dt[dt > 0]
    if not dt.size:
        return None, None
    fs = 1.0 / float(np.median(dt))
    s = np.abs(speed[sel])
    return _num(sparc(s, fs)), _num(ldlj(s, fs))


# ------------------------------------------------------------------------------ one session
@dataclass
class _Rep:
    exercise_id: str
    level: int | None
    retention: bool
    abs_error_deg: float | None
    in_tolerance: bool | None
    sparc: float | None
    ldlj: float | None
    start_s: float | None
    end_s: float | None
    range_key: str | None = None  # detected movements: their direction


def _repetitions(events: Sequence[tuple[float | None, str, Mapping[str, Any]]],
                 classic_level: int | None) -> list[_Rep]:
    reps = []
    for _, kind, p in events:
        if kind == "repetition_recorded":
            r = p.get("result") or {}
            reps.append(_Rep(str(p.get("exercise_id") or "?"), p.get("level"),
                             p.get("kind") == "retention", _num(r.get("abs_error_deg")),
                             r.get("in_tolerance"), _num(r.get("sparc")), _num(r.get("ldlj")),
                             _num(r.get("start_time_s")), _num(r.get("end_time_s"))))
        elif kind == "repetition_scored":
            s = p.get("score") or {}
            reps.append(_Rep(CLASSIC_EXERCISE, classic_level, False,
                             _num(s.get("abs_error_deg")), s.get("reached"), None, None,
                             _num(s.get("start_time_s")), _num(s.get("end_time_s"))))
        elif kind == "repetition":  # offline segmentation (a re-analysis): no target known
            err = _num(p.get("repositioning_error_deg"))
            key = SEGMENT_RANGE.get(str(p.get("direction")))
            reps.append(_Rep(f"movement_{key or 'unknown'}", None, False,
                             None if err is None else abs(err), None, _num(p.get("sparc")),
                             _num(p.get("ldlj")), _num(p.get("start_s")), _num(p.get("end_s")),
                             key))
    return reps


def _exercise_rows(reps: Sequence[_Rep], levels: Mapping[str, int],
                   catalog: Mapping[str, ExerciseInfo]) -> list[dict[str, Any]]:
    order = list(dict.fromkeys([*levels, *(r.exercise_id for r in reps)]))
    rows = []
    for ex in order:
        mine = [r for r in reps if r.exercise_id == ex]
        ret = [r for r in mine if r.retention]
        info = catalog.get(ex)
        if info is not None:
            name = info.name
        elif ex == CLASSIC_EXERCISE:
            name = CLASSIC_NAME
        elif ex.startswith("movement_"):
            name = f"Movements found in the recording: {ex[9:].replace('_', ' ')}"
        else:
            name = ex.replace("_", " ")
        rows.append({
            "exercise_id": ex, "name": name, "level": levels.get(ex),
            "repetitions": len(mine),
            "mean_abs_error_deg": _round(_mean(r.abs_error_deg for r in mine)),
            "in_tolerance_share": _share(mine),
            "retention_repetitions": len(ret),
            "retention_mean_abs_error_deg": _round(_mean(r.abs_error_deg for r in ret)),
            "retention_in_tolerance_share": _share(ret),
            "sparc": _round(_median(r.sparc for r in mine), 3),
            "ldlj": _round(_median(r.ldlj for r in mine), 3),
        })
    return rows


def _share(reps: Sequence[_Rep]) -> float | None:
    judged = [r.in_tolerance for r in reps if r.in_tolerance is not None]
    return round(sum(bool(x) for x in judged) / len(judged), 3) if judged else None


def session_metrics(s: StoredSession, catalog: Mapping[str, ExerciseInfo]) -> dict[str, Any]:
    """What one stored session contributes to the history (see the module docstring)."""
    events = s.events
    types = {k for _, k, _ in events}
    started = next((p for _, k, p in events if k == "session_started"), {}) or {}
    request = started.get("request") or {}
    practice = request.get("practice") or {}
    # levels: each exercise's level as practised (the last one if the therapist changed it)
    levels: dict[str, int] = {}
    classic_level = started.get("level") if isinstance(started.get("level"), int) else None
    for _, kind, p in events:
        if kind == "exercise_started" and isinstance(p.get("level"), int):
            levels[str(p.get("exercise_id"))] = p["level"]
        elif kind == "level_changed" and isinstance(p.get("level"), int):
            levels[str(p.get("exercise_id"))] = p["level"]
        elif kind == "target_changed" and isinstance(p.get("level"), int):
            classic_level = p["level"]
    if "repetition_scored" in types and classic_level is not None:
        levels.setdefault(CLASSIC_EXERCISE, classic_level)
    if practice.get("mode") == "baseline" or "baseline_step_completed" in types:
        kind = "baseline"
    elif practice or "program_started" in types or "exercise_started" in types:
        kind = "program"
    elif "repetition_scored" in types or "target_changed" in types:
        kind = "flexion"
    else:
        kind = "recording"

    reps = _repetitions(events, classic_level)
    t = np.asarray(s.angles.get("time_s", np.empty(0)), dtype=float)
    speed = s.angles.get("lumbar_angular_speed_deg_s")
    if speed is not None and t.size:
        speed = np.asarray(speed, dtype=float)
        for r in reps:
            if r.sparc is None and r.start_s is not None and r.end_s is not None:
                r.sparc, r.ldlj = _smoothness(t, speed, r.start_s, r.end_s)

    peaks: dict[str, float] = {}
    for key, (col, sign) in RANGE_ANGLES.items():
        values = s.angles.get(col)
        if values is None or not t.size:
            continue
        peak = robust_peak_deg(t, sign * np.asarray(values, dtype=float))
        if peak is not None:
            peaks[key] = round(max(0.0, peak), 2)
    comfortable = next((_num(p.get("comfortable_flexion_deg")) for _, k, p in events
                        if k == "calibration_done"), None)
    baseline: dict[str, float] = {}
    for _, k, p in events:
        if k == "baseline_step_completed" and isinstance(p.get("measure"), Mapping):
            v = _num(p["measure"].get("range_deg"))
            if v is not None and p.get("step") in RANGE_KEYS:
                baseline[str(p["step"])] = round(v, 2)
    practised = [key for key in RANGE_KEYS if key in baseline or any(
        (catalog.get(ex) and catalog[ex].range_key == key) for ex in levels) or any(
        r.range_key == key for r in reps)]
    if (CLASSIC_EXERCISE in levels or kind == "flexion") and "flexion" not in practised:
        practised.insert(0, "flexion")

    pain: dict[str, int | None] = {"before": None, "after": None}
    for rkind, payload in s.reports:  # reports first; a rating in the session's events wins
        for when in ("before", "after"):
            if rkind in (f"pain_nrs_{when}", f"pain_{when}"):
                pain[when] = _pain(payload.get("value"))
    for _, k, p in events:
        if k == "pain_recorded" and p.get("when") in pain:
            pain[p["when"]] = _pain(p.get("value"))
    retention = [r for r in reps if r.retention]
    return {
        "session_id": s.id, "started_at": s.started_at, "ended_at": s.ended_at,
        "status": s.status, "source": s.source, "kind": kind, "recorded": True,
        "duration_s": _round(_num(s.duration_s), 1),
        "completed": "program_completed" in types or "baseline_completed" in types or (
            s.status == "completed" and kind not in ("program", "baseline")),
        "exercises": _exercise_rows(reps, levels, catalog),
        "levels": levels,
        "repetitions": len(reps),
        "comfortable_flexion_deg": _round(comfortable),
        "peak_deg": peaks,
        "practised": practised,
        "baseline_ranges_deg": baseline or None,
        "mean_abs_error_deg": _round(_mean(r.abs_error_deg for r in reps)),
        "in_tolerance_share": _share(reps),
        "retention_mean_abs_error_deg": _round(_mean(r.abs_error_deg for r in retention)),
        "retention_in_tolerance_share": _share(retention),
        "sparc": _round(_median(r.sparc for r in reps), 3),
        "ldlj": _round(_median(r.ldlj for r in reps), 3),
        "pain_before": pain["before"], "pain_after": pain["after"],
        "decisions": [],
    }


# ------------------------------------------------------------------------------ the practice record
def _from_record(entry: Mapping[str, Any], catalog: Mapping[str, ExerciseInfo]) -> dict[str, Any]:
    """A practice session that has no recording: what its record says (pain, block results)."""
    outcome = entry.get("outcome") or {}
    blocks = [b for b in outcome.get("blocks") or [] if isinstance(b, Mapping)]
    levels = {str(e.get("exercise_id")): int(e["level"]) for e in entry.get("exercises") or []
              if isinstance(e, Mapping) and isinstance(e.get("level"), int)}
    rows = []
    for ex, level in levels.items():
        mine = [b for b in blocks if b.get("exercise_id") == ex]
        ret = [b for b in mine if b.get("kind") == "retention"]
        info = catalog.get(ex)
        rows.append({
            "exercise_id": ex, "name": info.name if info else ex, "level": level,
            "repetitions": sum(int(b.get("reps") or 0) for b in mine),
            "mean_abs_error_deg": _round(_block_mean(mine)),
            "in_tolerance_share": _block_share(mine),
            "retention_repetitions": sum(int(b.get("reps") or 0) for b in ret),
            "retention_mean_abs_error_deg": _round(_block_mean(ret)),
            "retention_in_tolerance_share": _block_share(ret),
            "sparc": None, "ldlj": None,
        })
    ret_blocks = [b for b in blocks if b.get("kind") == "retention"]
    return {
        "session_id": entry.get("session_id"), "started_at": entry.get("started_at") or (
            f"{entry.get('date')}T00:00:00+00:00" if entry.get("date") else None),
        "ended_at": entry.get("ended_at"), "status": "completed" if entry.get("completed")
        else "interrupted", "source": "", "kind": "program", "recorded": False,
        "duration_s": None, "completed": bool(entry.get("completed")), "exercises": rows,
        "levels": levels, "repetitions": sum(int(b.get("reps") or 0) for b in blocks),
        "comfortable_flexion_deg": None, "peak_deg": {},
        "practised": [k for k in RANGE_KEYS if any(
            catalog.get(ex) and catalog[ex].range_key == k for ex in levels)],
        "baseline_ranges_deg": None,
        "mean_abs_error_deg": _round(_block_mean(blocks)), "in_tolerance_share":
            _block_share(blocks), "retention_mean_abs_error_deg": _round(_block_mean(ret_blocks)),
        "retention_in_tolerance_share": _block_share(ret_blocks), "sparc": None, "ldlj": None,
        "pain_before": _pain(entry.get("pain_before")),
        "pain_after": _pain(entry.get("pain_after")),
        "decisions": [],
    }


def _block_mean(blocks: Sequence[Mapping[str, Any]]) -> float | None:
    """Repetition-weighted mean |error| of blocks."""
    num = den = 0.0
    for b in blocks:
        n, m = int(b.get("reps") or 0), _num(b.get("mean_abs_error_deg"))
        if n and m is not None:
            num += n * m
            den += n
    return num / den if den else None


def _block_share(blocks: Sequence[Mapping[str, Any]]) -> float | None:
    n = sum(int(b.get("reps") or 0) for b in blocks)
    ok = sum(int(b.get("reps_in_tolerance") or 0) for b in blocks)
    return round(ok / n, 3) if n else None


def _decision(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: d.get(k) for k in ("at", "session_id", "exercise_id", "rule_id", "outcome",
                                  "from_level", "to_level", "actor", "reason")}


# ------------------------------------------------------------------------------ the whole history
def build_history(patient: Mapping[str, Any], recorded: Iterable[Mapping[str, Any]],
                  record: Mapping[str, Any] | None, catalog: Mapping[str, ExerciseInfo], *,
                  date_from: date | None = None, date_to: date | None = None,
                  include_decisions: bool = True) -> dict[str, Any]:
    """The history document of `GET /api/patients/{id}/history` (see the module docstring).

    `recorded`: `session_metrics` of the patient's stored sessions; `record`: the practice
    record (or None). Sessions outside [date_from, date_to] are left out, as are RMDQ answers
    and decisions outside it."""
    record = record or {}
    by_id: dict[str, dict[str, Any]] = {}
    for m in recorded:  # copies: the caller's (cached) metrics stay as they were
        by_id[str(m["session_id"])] = copy.deepcopy(dict(m))
    for entry in record.get("sessions") or []:
        if not isinstance(entry, Mapping) or not entry.get("session_id"):
            continue
        sid = str(entry["session_id"])
        m = by_id.get(sid)
        if m is None:
            by_id[sid] = _from_record(entry, catalog)
            continue
        for when in ("before", "after"):  # the record has the ratings given after the end too
            v = _pain(entry.get(f"pain_{when}"))
            if v is not None:
                m[f"pain_{when}"] = v
        m["completed"] = bool(entry.get("completed")) or m["completed"]
        if not m["levels"]:
            m["levels"] = {str(e.get("exercise_id")): e.get("level")
                           for e in entry.get("exercises") or [] if isinstance(e, Mapping)}
    decisions = [d for d in record.get("decisions") or [] if isinstance(d, Mapping)]
    for d in decisions:
        m = by_id.get(str(d.get("session_id")))
        if m is not None and include_decisions:
            m["decisions"].append(_decision(d))
    for b in record.get("baselines") or []:  # ranges of an assessment, also when not recorded
        m = by_id.get(str(b.get("session_id"))) if isinstance(b, Mapping) else None
        dirs = ((b.get("baseline") or {}).get("directions") or {}) if isinstance(b, Mapping) else {}
        if m is not None and dirs:
            m["baseline_ranges_deg"] = {k: _round(_num(v.get("range_deg")))
                                        for k, v in dirs.items() if isinstance(v, Mapping)}
            m["kind"] = "baseline"

    sessions = []
    for m in by_id.values():
        d = session_date(m.get("started_at") or "")
        if d is None or (date_from and d < date_from) or (date_to and d > date_to):
            continue
        m["date"] = d.isoformat()
        sessions.append(m)
    sessions.sort(key=lambda m: (m["started_at"], m["session_id"]))

    start = session_date(str(record.get("start_date") or "")) if record.get("start_date") else None
    firsts = [session_date(m["started_at"]) for m in by_id.values() if m.get("started_at")]
    firsts = [d for d in firsts if d is not None]
    if firsts and (start is None or min(firsts) < start):
        start = min(firsts)
    for m in sessions:
        m["week"] = (date.fromisoformat(m["date"]) - start).days // 7 if start else 0
        m["number"] = None
    for n, m in enumerate(sessions, start=1):
        m["number"] = n

    rmdq = []
    for r in record.get("rmdq") or []:
        d = session_date(str(r.get("date") or r.get("at") or ""))
        if d is None or (date_from and d < date_from) or (date_to and d > date_to):
            continue
        rmdq.append({"date": d.isoformat(), "week": r.get("week"), "score": r.get("score")})
    rmdq.sort(key=lambda r: r["date"])

    practised = [k for k in RANGE_KEYS if any(k in m["practised"] for m in sessions)]
    out_decisions = []
    if include_decisions:
        for d in decisions:
            day = session_date(str(d.get("at") or ""))
            if day is not None and (date_from and day < date_from or date_to and day > date_to):
                continue
            out_decisions.append(_decision(d))
    weeks = weekly(sessions, rmdq, start)
    return {
        "version": HISTORY_VERSION, "patient": dict(patient),
        "period": {"from": date_from.isoformat() if date_from else (
                       sessions[0]["date"] if sessions else None),
                   "to": date_to.isoformat() if date_to else (
                       sessions[-1]["date"] if sessions else None)},
        "programme_start": start.isoformat() if start else None,
        "directions_practised": practised,
        "sessions": sessions, "weeks": weeks, "rmdq": rmdq,
        "baselines": _baselines(record, date_from, date_to),
        "decisions": out_decisions,
        "summary": _summary(sessions, weeks, rmdq),
    }


def weekly(sessions: Sequence[Mapping[str, Any]], rmdq: Sequence[Mapping[str, Any]],
           start: date | None) -> list[dict[str, Any]]:
    """One row per programme week that has sessions or an RMDQ: means of the session values
    (peak ranges: the week's best), repetitions summed."""
    weeks: dict[int, list[Mapping[str, Any]]] = {}
    for m in sessions:
        weeks.setdefault(int(m["week"]), []).append(m)

    def rmdq_week(r: Mapping[str, Any]) -> int | None:
        """The week of the answer's date on the sessions' week scale (the record counts its
        weeks from its own start, which an imported earlier session may precede)."""
        d = session_date(str(r.get("date") or ""))
        if start is not None and d is not None:
            return (d - start).days // 7
        return r.get("week") if isinstance(r.get("week"), int) else None

    scores: dict[int, Any] = {}
    for r in rmdq:
        w = rmdq_week(r)
        if w is not None:
            weeks.setdefault(w, [])
            scores[w] = r.get("score")  # the latest answer of the week (rmdq is by date)
    out = []
    for w in sorted(weeks):
        ms = weeks[w]
        first = (start + timedelta(days=7 * w)) if start else None
        peaks = {}
        for key in RANGE_KEYS:
            vals = [m["peak_deg"].get(key) for m in ms if key in m["practised"]]
            vals = [v for v in vals if v is not None]
            if vals:
                peaks[key] = max(vals)
        score = scores.get(w)
        out.append({
            "week": w, "from": first.isoformat() if first else None,
            "to": (first + timedelta(days=6)).isoformat() if first else None,
            "sessions": len(ms), "repetitions": sum(int(m["repetitions"] or 0) for m in ms),
            "peak_deg": peaks,
            "comfortable_flexion_deg": _round(_mean(m["comfortable_flexion_deg"] for m in ms)),
            "mean_abs_error_deg": _round(_mean(m["mean_abs_error_deg"] for m in ms)),
            "retention_mean_abs_error_deg": _round(_mean(
                m["retention_mean_abs_error_deg"] for m in ms)),
            "sparc": _round(_mean(m["sparc"] for m in ms), 3),
            "ldlj": _round(_mean(m["ldlj"] for m in ms), 3),
            "pain_before": _round(_mean(m["pain_before"] for m in ms), 1),
            "pain_after": _round(_mean(m["pain_after"] for m in ms), 1),
            "rmdq_score": score,
        })
    return out


def _baselines(record: Mapping[str, Any], date_from: date | None,
               date_to: date | None) -> list[dict[str, Any]]:
    out = []
    for b in record.get("baselines") or []:
        if not isinstance(b, Mapping):
            continue
        base = b.get("baseline") or {}
        d = session_date(str(base.get("taken_on") or b.get("recorded_at") or ""))
        if d is None or (date_from and d < date_from) or (date_to and d > date_to):
            continue
        out.append({"date": d.isoformat(), "source": b.get("source"),
                    "session_id": b.get("session_id"),
                    "ranges_deg": {k: _round(_num(v.get("range_deg")))
                                   for k, v in (base.get("directions") or {}).items()
                                   if isinstance(v, Mapping)}})
    return out


def _change(values: Sequence[float | None], nd: int = 1) -> dict[str, Any] | None:
    """First and last known value, their difference, and how many values there were."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    first, last = vals[0], vals[-1]
    return {"first": round(first, nd), "last": round(last, nd), "change": round(last - first, nd),
            "values": len(vals)}


def _summary(sessions: Sequence[Mapping[str, Any]], weeks: Sequence[Mapping[str, Any]],
             rmdq: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """First against last week with a value, for the headline sentences of the pages."""
    first_last = _change
    return {
        "sessions": len(sessions),
        "weeks": len(weeks),
        "repetitions": sum(int(m["repetitions"] or 0) for m in sessions),
        "first_date": sessions[0]["date"] if sessions else None,
        "last_date": sessions[-1]["date"] if sessions else None,
        "peak_flexion_deg": first_last([w["peak_deg"].get("flexion") for w in weeks]),
        "retention_mean_abs_error_deg": first_last(
            [w["retention_mean_abs_error_deg"] for w in weeks]),
        "mean_abs_error_deg": first_last([w["mean_abs_error_deg"] for w in weeks]),
        "pain_before": first_last([w["pain_before"] for w in weeks]),
        "rmdq_score": first_last([_num(r["score"]) for r in rmdq]),
    }


# ------------------------------------------------------------------------------ CSV
SESSION_COLUMNS: tuple[tuple[str, str], ...] = (
    # (CSV column, key in a session row; "peak:<range>" reads peak_deg)
    ("session_number", "number"), ("date", "date"), ("programme_week", "week"),
    ("started_at_utc", "started_at"), ("session_id", "session_id"), ("kind", "kind"),
    ("status", "status"), ("source", "source"), ("recorded", "recorded"),
    ("duration_s", "duration_s"), ("exercises_and_levels", "levels"),
    ("repetitions", "repetitions"),
    ("comfortable_flexion_deg", "comfortable_flexion_deg"),
    *((f"peak_{k}_deg", f"peak:{k}") for k in RANGE_KEYS),
    ("mean_abs_error_deg", "mean_abs_error_deg"), ("in_tolerance_share", "in_tolerance_share"),
    ("retention_mean_abs_error_deg", "retention_mean_abs_error_deg"),
    ("retention_in_tolerance_share", "retention_in_tolerance_share"),
    ("sparc_median", "sparc"), ("ldlj_median", "ldlj"),
    ("pain_before_nrs_0_10", "pain_before"), ("pain_after_nrs_0_10", "pain_after"),
    ("decisions", "decisions"),
)
WEEK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("programme_week", "week"), ("week_from", "from"), ("week_to", "to"),
    ("sessions", "sessions"), ("repetitions", "repetitions"),
    ("comfortable_flexion_mean_deg", "comfortable_flexion_deg"),
    *((f"peak_{k}_max_deg", f"peak:{k}") for k in RANGE_KEYS),
    ("mean_abs_error_deg", "mean_abs_error_deg"),
    ("retention_mean_abs_error_deg", "retention_mean_abs_error_deg"),
    ("sparc_mean", "sparc"), ("ldlj_mean", "ldlj"),
    ("pain_before_mean_nrs_0_10", "pain_before"), ("pain_after_mean_nrs_0_10", "pain_after"),
    ("rmdq_score_0_24", "rmdq_score"),
)


def _cell(row: Mapping[str, Any], key: str) -> Any:
    if key.startswith("peak:"):
        v = (row.get("peak_deg") or {}).get(key[5:])
        practised = row.get("practised")
        return "" if v is None or (practised is not None and key[5:] not in practised) else v
    v = row.get(key)
    if key == "levels":
        return ";".join(f"{ex}={lv}" for ex, lv in (v or {}).items())
    if key == "decisions":
        return ";".join(f"{d.get('exercise_id')}:{d.get('rule_id')}:{d.get('from_level')}->"
                        f"{d.get('to_level')}" for d in v or [])
    if isinstance(v, bool):
        return int(v)
    return "" if v is None else v


def history_csv(history: Mapping[str, Any], table: str = "sessions") -> str:
    """One table of the history as CSV (RFC 4180, `\\r\\n` line ends as the csv module
    writes them); empty cells where a value is not known. Peak columns of the sessions table
    hold a value only for directions practised in that session."""
    if table not in ("sessions", "weeks"):
        raise ValueError("table must be 'sessions' or 'weeks'")
    columns = SESSION_COLUMNS if table == "sessions" else WEEK_COLUMNS
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([c for c, _ in columns])
    for row in history[table]:
        w.writerow([_cell(row, k) for _, k in columns])
    return buf.getvalue()


__all__ = ["ExerciseInfo", "StoredSession", "build_history", "history_csv", "robust_peak_deg",
           "session_metrics", "weekly"]
