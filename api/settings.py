"""Service settings: defaults, overridable from `LUMBO_*` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from api.auth.config import AuthSettings
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
    auth: AuthSettings = Field(
        default_factory=AuthSettings, description="accounts and access (api/auth/config.py); "
        "the accounts live in data_dir's database (in memory when data_dir is None)",
    )

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
        if "data_dir" not in overrides:
            from recordings.paths import default_data_dir  # the recordings' data directory

            env["data_dir"] = default_data_dir()
        env.update(overrides)
        return cls.model_validate(env)
