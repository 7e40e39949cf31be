"""Service settings: defaults, overridable from `LUMBO_*` environment variables."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field

from api.schema import StartSessionRequest


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
        env.update(overrides)
        return cls.model_validate(env)
