"""Service settings: defaults, overridable from `LUMBO_*` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from api.auth.config import AuthSettings
from api.edge_config import EdgeSettings
from api.schema import BLE_ADDRESS_PATTERN, BLE_RATE_MAX_HZ, BLE_RATE_MIN_HZ, StartSessionRequest


class Settings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    queue_size: int = Field(64, ge=1, description="frames buffered per live client before dropping")
    evict_after_s: float = Field(10.0, gt=0, description="evict a client whose send is stuck this long")
    heartbeat_s: float = Field(1.0, gt=0, description="heartbeat period while no frames flow")
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="extra Origins allowed on the WebSocket (same-host Origins always are)",
    )
    default_level: int = Field(1, ge=1, description="exercise level when a start request names none")
    autostart: StartSessionRequest | None = Field(
        None, description="session started with the app (lumbo demo)"
    )
    demo_companions: int = Field(
        0, ge=0, le=20, description="lumbo demo: this many more simulated demo patients of the "
        "demo therapist practise at the same time (the therapist's at-a-glance view)"
    )
    default_source: Literal["simulated", "ble"] = Field(
        "simulated", description="what a start request without `source` uses (the pages' Start): "
        "`ble` after `lumbo serve --ble` or `--upper/--lower`",
    )
    ble_upper: str | None = Field(None, pattern=BLE_ADDRESS_PATTERN,
                                  description="upper sensor given on the command line")
    ble_lower: str | None = Field(None, pattern=BLE_ADDRESS_PATTERN,
                                  description="lower sensor given on the command line")
    ble_rate_hz: float = Field(100.0, ge=BLE_RATE_MIN_HZ, le=BLE_RATE_MAX_HZ,
                               description="BLE sample rate for sessions that do not name one")
    remember_sensors: bool = Field(
        True, description="keep the sensor roles in data_dir/sensors.json (the BLE demo's "
        "simulated sensors are not this host's)",
    )
    data_dir: Path | None = Field(
        None, description="where sensors.json remembers the sensor roles; None: in memory only "
        "(from_env: $LUMBO_DATA_DIR, else ~/.local/share/lumbo)",
    )
    db: str | None = Field(
        None, description="the recordings and accounts database (`--db`, $LUMBO_DB): a data "
        "directory, sqlite:///PATH/lumbo.db or postgresql://USER@HOST:PORT/DBNAME (several "
        "instances may share one PostgreSQL database); None: data_dir's lumbo.db",
    )
    broker: str | None = Field(
        None, pattern=r"^(redis|rediss|unix)://", description="Redis URL of the message broker "
        "shared by several instances (`--broker`, $LUMBO_BROKER): a therapist on one instance "
        "watches a patient live on another (api/broker.py); None: everything stays in-process",
    )
    broker_publish: Literal["on_interest", "always"] = Field(
        "on_interest", description="relay a local session's messages to the broker only while "
        "another instance has viewers for them (`always`: for measuring what that saves)",
    )
    edge: EdgeSettings | None = Field(
        None, description="edge mode (`lumbo edge`, api/edge.py): upload every session of the "
        "local patient to a central service and relay live frames there; None: not an edge",
    )
    auth: AuthSettings = Field(
        default_factory=AuthSettings, description="accounts and access (api/auth/config.py); "
        "the accounts live in the recordings database (`db`, else data_dir's; in memory when "
        "both are None)",
    )

    @field_validator("db")
    @classmethod
    def _check_db(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from recordings.database import parse_location

        parse_location(value)  # a ValueError says what is accepted
        return value.strip()

    def database(self) -> str | Path | None:
        """Where the recordings and accounts are: `db`, else `data_dir` (None: nowhere)."""
        return self.db or self.data_dir

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env: dict[str, object] = {}
        if "LUMBO_HOST" in os.environ:
            env["host"] = os.environ["LUMBO_HOST"]
        if "LUMBO_PORT" in os.environ:
            env["port"] = int(os.environ["LUMBO_PORT"])
        if "LUMBO_DEFAULT_LEVEL" in os.environ:
            env["default_level"] = int(os.environ["LUMBO_DEFAULT_LEVEL"])
        if "LUMBO_ALLOWED_ORIGINS" in os.environ:
            env["allowed_origins"] = [
                o.strip() for o in os.environ["LUMBO_ALLOWED_ORIGINS"].split(",") if o.strip()
            ]
        if os.environ.get("LUMBO_BROKER"):
            env["broker"] = os.environ["LUMBO_BROKER"]
        if "LUMBO_BROKER_PUBLISH" in os.environ:
            env["broker_publish"] = os.environ["LUMBO_BROKER_PUBLISH"]
        if os.environ.get("LUMBO_DB", "").strip() and "db" not in overrides:
            env["db"] = os.environ["LUMBO_DB"].strip()
        if "data_dir" not in overrides:
            from recordings.paths import default_data_dir  # the recordings' data directory

            env["data_dir"] = default_data_dir()
        env.update(overrides)
        return cls.model_validate(env)
