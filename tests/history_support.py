"""Seeding a patient's history through the real code paths (no tests here).

- `import_simulated`: a simulated patient's session (calibration, then forward bends) imported
  into the recordings store with its own start date, as `lumbo import` stores a recording made
  elsewhere, then re-analysed offline (`lumbo reanalyze`): angles, calibration, repetitions. The
  start date lets a test have sessions in earlier programme weeks. The simulated patient bends
  less in older sessions when asked to (`calibration_deg`, `amplitude_deg`): the values in the
  history are what the pipeline measured on those signals, not numbers written in by hand.
- `run_flexion` / `run_program`: short unpaced live sessions over HTTP, recorded as every live
  session is (the single flexion exercise; a day's program with pain before and after).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from api.recording import reanalyze
from recordings.models import SessionInfo
from recordings.store import RecordingStore
from recordings.testing import simulated_stream
from sensors.simulation import PatientParams, SimulatedPatient, calibration_then_flexion_reps

SHORT_PROGRAM = {"items": [{"exercise_id": "flexion_to_target", "level": 1, "sets": 1,
                            "rest_after_s": 0}], "reason": "short test program"}


def days_ago(days: int, hour: int = 10) -> str:
    """UTC ISO 8601 time `days` before today at `hour`:00."""
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days)
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC).isoformat()


def import_simulated(store: RecordingStore, patient_id: str | None, *, started_at: str,
                     seed: int = 0, n_reps: int = 3, calibration_deg: float = 80.0,
                     amplitude_deg: float = 40.0) -> str:
    """Import a simulated session dated `started_at` for the patient and analyse it offline;
    returns the stored session's id."""
    script = calibration_then_flexion_reps(n_reps, amplitude_deg, calibration_deg=calibration_deg,
                                           seed=seed)
    recording = SimulatedPatient(script, PatientParams(seed=seed)).record()
    info = SessionInfo(source="import", patient_id=patient_id, started_at=started_at,
                       notes=f"simulated patient, seed {seed}, calibration bend "
                             f"{calibration_deg:g} deg, {n_reps} bends of {amplitude_deg:g} deg")
    sid = store.import_recording(simulated_stream(recording, 10), info)
    reanalyze(store, sid)
    return sid


def wait_session_end(app: Any, portal_call: Any, patient_id: str) -> None:
    """Wait for the patient's live session to end and its recording to be closed."""
    session = app.state.manager.by_patient[patient_id]
    portal_call(session.wait)
    portal_call(app.state.recordings.wait_closed)


def run_flexion(http: Any, headers: dict[str, str], patient_id: str, *, n_reps: int = 3,
                seed: int = 0) -> str:
    """Start an unpaced single-exercise session (returns its id; the caller waits for it)."""
    r = http.post(f"/api/session/start?patient_id={patient_id}", headers=headers,
                  json={"script": "flexion_reps", "n_reps": n_reps, "realtime": False,
                        "seed": seed})
    assert r.status_code == 200, r.text
    return r.json()["session_id"]


def start_program(http: Any, headers: dict[str, str], patient_id: str, *, seed: int = 3,
                  pain_before: int = 5) -> str:
    """Set the short program and start it unpaced with the pain before (returns the id)."""
    r = http.put(f"/api/practice/patients/{patient_id}/program", headers=headers,
                 json=SHORT_PROGRAM)
    assert r.status_code == 200, r.text
    r = http.post(f"/api/practice/start?patient_id={patient_id}", headers=headers,
                  json={"session": {"realtime": False, "seed": seed}})
    assert r.status_code == 200, r.text
    r = http.post(f"/api/practice/pain?patient_id={patient_id}", headers=headers,
                  json={"when": "before", "value": pain_before})
    assert r.status_code == 200, r.text
    return r.json()["practice"]["session_id"]
