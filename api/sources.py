"""Which `SensorSource` a session request gets: the simulated patient or two BLE sensors.

Replayed recordings plug in here later without touching routes or the session layer. BLE
requests may leave the sensors out: `resolve_request` fills them in from the sensors remembered
on this host (`api.sensor_roles`), which `lumbo serve --upper/--lower` seeds, and a request that
names no source at all goes to BLE on a server started for BLE.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from api import schema
from sensors.samples import SampleBatch, SensorHealth, SensorRole
from sensors.source import SensorSource

if TYPE_CHECKING:
    from api.sensor_roles import SensorRoleStore
    from api.settings import Settings


class SourceError(ValueError):
    """The requested source cannot be created (unknown, unavailable, bad options)."""


class SourceRequestError(ValueError):
    """The request cannot be completed from what this host knows (answered with 422)."""


def make_simulated_source(req: schema.StartSessionRequest, **_: Any
                          ) -> tuple[SensorSource, dict[str, Any]]:
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


class RememberingBleSource:
    """`BleSensorSource` that writes what it saw of each sensor (name, family, battery) to the
    host's sensor store when it stops, so the next scan can show a battery level the
    advertisement does not carry."""

    def __init__(self, inner: Any, store: SensorRoleStore | None) -> None:
        self.inner = inner
        self.store = store

    def batches(self) -> AsyncIterator[SampleBatch]:
        return self.inner.batches()

    def health(self) -> dict[SensorRole, SensorHealth]:
        return self.inner.health()

    async def stop(self) -> None:
        try:
            await self.inner.stop()
        finally:
            self.remember()

    def remember(self) -> None:
        if self.store is None:
            return
        for h in self.inner.health().values():
            if h.address:
                self.store.note_sensor(h.address, name=h.device_name,
                                       family=h.extra.get("family") or None,
                                       battery_pct=h.battery_pct, save=False)
        self.store.save()


def make_ble_source(req: schema.StartSessionRequest, *, store: SensorRoleStore | None = None,
                    ble_config: Any = None, **_: Any) -> tuple[SensorSource, dict[str, Any]]:
    """Two BLE sensors through the connection manager; the roles are remembered at once."""
    if req.upper is None or req.lower is None:  # resolve_request fills them in
        raise SourceError("source 'ble' needs the upper and lower sensor addresses")
    try:
        from sensors.ble import BleSensorSource
    except ImportError as exc:  # pragma: no cover - bleak is a dependency
        raise SourceError(f"BLE is not available: {exc}") from exc
    inner = BleSensorSource(req.upper, req.lower, req.rate_hz, config=ble_config)
    if store is not None:
        store.assign(req.upper, req.lower, req.rate_hz)
    source = RememberingBleSource(inner, store)
    return source, {"upper": req.upper, "lower": req.lower, "rate_hz": req.rate_hz,
                    "source": source, "manager": inner.manager}


def make_replay_source(req: schema.StartSessionRequest, **context: Any
                       ) -> tuple[SensorSource, dict[str, Any]]:
    """A stored session (`session_id`) played back as it arrived live (api/recording.py)."""
    from api.recording import make_replay_source as make

    return make(req, **context)


FACTORIES = {"simulated": make_simulated_source, "ble": make_ble_source,
             "replay": make_replay_source}


def make_source(req: schema.StartSessionRequest, **context: Any
                ) -> tuple[SensorSource, dict[str, Any]]:
    """The source for `req`; `context` (store, ble_config) is passed to the factory."""
    try:
        factory = FACTORIES[req.source]
    except KeyError:  # pragma: no cover - the request model already restricts `source`
        raise SourceError(f"unknown source {req.source!r}; known: {sorted(FACTORIES)}") from None
    return factory(req, **context)


def resolve_request(req: schema.StartSessionRequest, settings: Settings,
                    store: SensorRoleStore) -> schema.StartSessionRequest:
    """Complete a start request from the server's configuration and this host's memory.

    - No `source` given and the server runs for BLE (`lumbo serve --ble/--upper/--lower`):
      a BLE session; the simulator's options of such a request (the therapist page's script
      and speed) do not apply and are dropped.
    - `source: ble` without sensors: the sensors remembered on this host (the last assignment,
      or those given on the command line).
    """
    if "source" not in req.model_fields_set and settings.default_source == "ble":
        keep = {k: getattr(req, k) for k in ("level", "reps_per_set")
                if k in req.model_fields_set}
        req = schema.StartSessionRequest(source="ble", **keep)
    if req.source != "ble" or req.upper is not None:
        return req
    roles = store.roles()
    if "upper" not in roles or "lower" not in roles:
        raise SourceRequestError(
            "source 'ble' needs the upper and lower sensor addresses: none were given and none "
            "are remembered on this host. Scan (GET /api/sensors/scan or `lumbo scan`) and "
            "assign the two sensors first.")
    rate = req.rate_hz if "rate_hz" in req.model_fields_set else (
        store.rate_hz() or settings.ble_rate_hz)
    data = req.model_dump(exclude_unset=True)
    data.update(upper=roles["upper"], lower=roles["lower"], rate_hz=rate)
    try:
        return schema.StartSessionRequest(**data)
    except ValueError as exc:  # e.g. the remembered pair is the same sensor twice
        raise SourceRequestError(f"the remembered sensors cannot be used: {exc}") from exc
