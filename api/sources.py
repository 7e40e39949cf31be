"""Which `SensorSource` a session request gets. Only the simulated patient for now; BLE sensors
and replayed recordings plug in here later without touching routes or the session layer."""

from __future__ import annotations

from typing import Any

from api import schema
from sensors.source import SensorSource


class SourceError(ValueError):
    """The requested source cannot be created (unknown, unavailable, bad options)."""


def make_simulated_source(req: schema.StartSessionRequest) -> tuple[SensorSource, dict[str, Any]]:
    """The simulated patient running `req.script`; `info` keeps what is needed to compare the
    live output with the simulator's truth (the patient and the source)."""
    try:
        from sensors import simulation as sim
    except ImportError as exc:  # pragma: no cover - only while the simulator is being written
        raise SourceError(f"the simulated patient is not available: {exc}") from exc

    if req.script == "demo":
        script = sim.demo_script(seed=req.seed)
    else:
        script = sim.calibration_then_flexion_reps(
            n_reps=req.n_reps, amplitude_deg=req.amplitude_deg, seed=req.seed,
            calibration_deg=req.calibration_deg,
        )
    patient = sim.SimulatedPatient(script, sim.PatientParams(seed=req.seed))
    source = sim.SimulatedPatientSource(
        patient, realtime=req.realtime, speed=req.speed, loop=req.loop
    )
    return source, {"patient": patient, "script": script, "source": source}


FACTORIES = {"simulated": make_simulated_source}


def make_source(req: schema.StartSessionRequest) -> tuple[SensorSource, dict[str, Any]]:
    try:
        factory = FACTORIES[req.source]
    except KeyError:  # pragma: no cover - the request model already restricts `source`
        raise SourceError(f"unknown source {req.source!r}; known: {sorted(FACTORIES)}") from None
    return factory(req)
