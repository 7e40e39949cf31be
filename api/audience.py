"""Live frames per audience: the therapist's clients get the full frame, the patient's own page
gets `patient_frame(frame)`, built once per frame (api/live.py) and published on the patient's
audience topic (api/fanout.py), never once per client.

The patient's variant leaves out what is for the therapist only:

- `trace` (every sample, for the therapist's trace) is empty; `gap` still says samples were lost;
- `program.exercise` (the practice engine's full state) is null: the patient's page reads
  `program.patient` (`PracticeState.patient_view()`), which feedback/ already reduces;
- `program_events` keep only the events addressed to the patient (`audience: patient`);
- in `program.summary`, progression decisions and the baseline review keep what the patient is
  told (`patient_message`, the levels) and lose the rule, the reason and the inputs.

And it never carries a position the current practice block withholds from the patient: during
graded practice the raw `angles` and `velocity` are null whenever the patient view shows no
position (`program.patient.value_deg` null: blocks without concurrent feedback, retention
blocks, and before the first exercise and after the last), and always during the baseline
assessment, whose own live value the patient gets only while its guide is on. The single
flexion exercise (no `program`) gives concurrent feedback throughout, so its angles stay.

Status messages and heartbeats are the same for both audiences: they carry the session's state,
not the position or the practice engine's state.
"""

from __future__ import annotations

from typing import Any

from api import schema

_DECISION_KEYS = ("exercise_id", "outcome", "from_level", "to_level", "patient_message")


def hides_position(program: schema.ProgramFrame | None) -> bool:
    """True when the patient must not see their position in this frame."""
    if program is None:
        return False
    if program.mode == "baseline":
        return True
    view = program.patient
    return view is None or view.get("value_deg") is None


def _decision(d: Any) -> Any:
    return {k: d[k] for k in _DECISION_KEYS if k in d} if isinstance(d, dict) else d


def _summary(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    if summary is None:
        return None
    out = dict(summary)
    if isinstance(out.get("decisions"), list):
        out["decisions"] = [_decision(d) for d in out["decisions"]]
    if isinstance(out.get("review"), dict):
        out["review"] = _decision(out["review"])
    return out


def _baseline(baseline: dict[str, Any] | None) -> dict[str, Any] | None:
    if baseline is None or baseline.get("guide_on"):
        return baseline
    return {**baseline, "value_deg": None}


def patient_program(program: schema.ProgramFrame) -> schema.ProgramFrame:
    return program.model_copy(update={
        "exercise": None,
        "summary": _summary(program.summary),
        "baseline": _baseline(program.baseline),
    })


def patient_frame(frame: schema.LiveFrame) -> schema.LiveFrame:
    """The patient's view of `frame` (a shallow copy; `frame` is not changed)."""
    program = frame.program
    update: dict[str, Any] = {
        "trace": schema.Trace(),
        "program": None if program is None else patient_program(program),
        "program_events": [e for e in frame.program_events if e.audience == "patient"],
    }
    if hides_position(program):
        update["angles"] = schema.Angles()
        update["velocity"] = schema.Velocity()
    return frame.model_copy(update=update)
