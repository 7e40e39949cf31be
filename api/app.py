"""`create_app(settings)`: the FastAPI application with its lifespan, routers and pages."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from api import schema
from api.auth.setup import autostart_patient_id, install_auth
from api.broker import install_broker
from api.fanout import Broadcaster
from api.live import (
    NoSession,
    SessionConflict,
    SessionManager,
    TargetError,
    default_components,
)
from api.routes import history as history_routes
from api.routes import ingest as ingest_routes
from api.routes import live as live_routes
from api.routes import overview as overview_routes
from api.routes import practice as practice_routes
from api.routes import recordings as recordings_routes
from api.routes import meta, pages, sensors, session
from api.routes.pages import STATIC_DIR
from api.sensor_roles import SensorRoleStore
from api.settings import Settings
from api.sources import SourceError, SourceRequestError, make_source


def _first_errors(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def create_app(settings: Settings | None = None, *, components: Callable | None = None) -> FastAPI:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manager: SessionManager = app.state.manager
        heartbeat = asyncio.get_running_loop().create_task(
            manager.broadcaster.run_heartbeat(), name="lumbo-heartbeat"
        )
        if app.state.broker is not None:
            await app.state.broker.start()  # connects in the background, retried if absent
        if settings.autostart is not None:
            await manager.start(settings.autostart, patient_id=autostart_patient_id(app))
        if settings.demo_companions and settings.auth.demo_accounts:
            from api.auth.cli import start_demo_companions

            await start_demo_companions(app, settings.demo_companions)
        try:
            yield
        finally:
            await manager.shutdown()
            if app.state.broker is not None:
                await app.state.broker.aclose()
            await app.state.recordings.aclose()  # every recording closed: nothing left queued
            await manager.broadcaster.close_all()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    app = FastAPI(
        title="Lumbo",
        version="0.1.0",
        summary="Live movement feedback for graded sensorimotor retraining in low back pain",
        description=(
            "REST control of the live session, the live WebSocket `/ws/live` (message schemas at "
            f"`/api/schema/{{frame,heartbeat,status}}`, schema_version {schema.SCHEMA_VERSION}), "
            "the patient page `/` and the therapist page `/therapist`."
        ),
        lifespan=lifespan,
    )
    broadcaster = Broadcaster(
        queue_size=settings.queue_size,
        evict_after_s=settings.evict_after_s,
        heartbeat_s=settings.heartbeat_s,
    )
    store = SensorRoleStore(settings.data_dir if settings.remember_sensors else None)
    if settings.ble_upper and settings.ble_lower:  # `lumbo serve --upper --lower`
        store.assign(settings.ble_upper.upper(), settings.ble_lower.upper(), settings.ble_rate_hz)
    # What the source factories get besides the request; tests may set "ble_config".
    source_context: dict[str, object] = {"store": store, "ble_config": None}
    manager = SessionManager(
        broadcaster,
        components=components or default_components,
        source_factory=lambda req: make_source(req, **source_context),
        default_level=settings.default_level,
    )
    broadcaster.heartbeat_message = manager.heartbeat_message
    app.state.settings = settings
    app.state.manager = manager
    install_broker(app, settings)  # several instances: live fan-out through Redis (api/broker.py)
    install_auth(app, settings)  # accounts; every route and the WebSocket need a sign-in
    app.state.sensor_roles = store
    app.state.source_context = source_context

    def _error(status: int) -> Callable:
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse(status_code=status, content={"detail": str(exc)})

        return handler

    app.add_exception_handler(SessionConflict, _error(409))
    app.add_exception_handler(NoSession, _error(404))
    app.add_exception_handler(TargetError, _error(422))
    app.add_exception_handler(SourceError, _error(400))
    app.add_exception_handler(SourceRequestError, _error(422))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={"detail": jsonable_encoder(exc.errors()), "message": _first_errors(exc)},
        )

    practice_routes.install(app)  # graded practice: /api/practice, the session hook
    recordings_routes.install(app)  # every session stored; /api/recordings; the replay source
    ingest_routes.install(app)  # edge mode, central side: /api/ingest uploads, /ws/ingest/live
    if settings.edge is not None:  # edge mode: upload to and relay live to a central service
        from api.edge import install_edge

        install_edge(app)
    history_routes.install(app)  # /api/patients/{id}/history(.csv), the printable report
    overview_routes.install(app)  # /api/live/sessions, /ws/overview: live sessions at a glance
    app.include_router(session.router)
    app.include_router(sensors.router)
    app.include_router(meta.router)
    app.include_router(live_routes.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
