"""`/api/sensors`: scan for BLE sensors and remember which one is `upper` and which `lower`."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from api import schema
from api.routes.deps import get_roles, get_settings
from api.sensor_roles import SensorRoleStore
from api.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/sensors", tags=["sensors"])

Roles = Annotated[SensorRoleStore, Depends(get_roles)]
AppSettings = Annotated[Settings, Depends(get_settings)]


def roles_model(store: SensorRoleStore, settings: Settings) -> schema.SensorRoles:
    return store.model(settings.default_source, settings.ble_rate_hz)


def scanned(found: Any, store: SensorRoleStore) -> schema.ScannedSensor:
    """A `sensors.ble.FoundSensor` for the API, with the remembered role and last battery."""
    battery, battery_from = found.battery_pct, "advertisement"
    if battery is None:
        battery = store.sensor(found.address).get("battery_pct")
        battery_from = "last_session"
    return schema.ScannedSensor(
        name=found.name, address=found.address, rssi=found.rssi, family=found.family,
        display_name=found.display_name, battery_pct=battery,
        battery_from=battery_from if battery is not None else None,
        role=store.role_of(found.address),  # type: ignore[arg-type]
    )


@router.get(
    "/scan",
    response_model=schema.ScanResult,
    summary="Scan for supported BLE sensors",
    responses={503: {"model": schema.ErrorResponse,
                     "description": "Bluetooth is not available (off, no adapter, no BlueZ)"}},
)
async def scan_sensors(
    roles: Roles,
    settings: AppSettings,
    timeout_s: Annotated[float, Query(gt=0.0, le=30.0, description="scan duration, s")] = 3.0,
) -> Any:
    """Listen for advertisements for `timeout_s` and list the supported sensors (name, address,
    signal strength, family, battery where known), strongest signal first, each with the role
    it is remembered for on this host. Sensors connected to a host do not advertise: a sensor
    streaming in a running session is not listed."""
    from sensors.ble import scan
    from sensors.ble.errors import classify

    try:
        found = await scan(timeout_s)
    except Exception as exc:  # noqa: BLE001 - every Bluetooth fault becomes a readable 503
        fault = classify(exc)
        log.info("scan failed: %s", fault.message)
        return JSONResponse(status_code=503, content={"detail": fault.message})
    return schema.ScanResult(sensors=[scanned(f, roles) for f in found], timeout_s=timeout_s,
                             roles=roles_model(roles, settings))


@router.get("/roles", response_model=schema.SensorRoles, summary="Sensors assigned to the roles")
async def get_sensor_roles(roles: Roles, settings: AppSettings) -> schema.SensorRoles:
    """The sensors remembered for `upper` (T12/L1) and `lower` (S2) on this host: the last
    assignment (a BLE session start, `PUT /api/sensors/roles`, or `lumbo serve --upper
    --lower`); the pages preselect them."""
    return roles_model(roles, settings)


@router.put("/roles", response_model=schema.SensorRoles, summary="Assign the sensor roles")
async def put_sensor_roles(req: schema.AssignRolesRequest, roles: Roles,
                           settings: AppSettings) -> schema.SensorRoles:
    """Remember two sensors for `upper` and `lower` without starting a session."""
    roles.assign(req.upper, req.lower, req.rate_hz)
    return roles_model(roles, settings)
