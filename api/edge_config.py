"""Settings of edge mode (`lumbo edge`): `Settings.edge` in api/settings.py; None: not an edge."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{2,63}$"  # api/auth/service.py's


class EdgeSettings(BaseModel):
    central_url: str = Field(description="the central service, e.g. https://central:8000")
    token: SecretStr = Field(description="the device token (lumbo create-device-token)")
    patient: str = Field("home-patient", pattern=USERNAME_PATTERN,
                         description="the local account whose sessions this edge uploads (and "
                         "the patient page signs in as); created if missing")
    poll_s: float = Field(0.5, gt=0, le=60, description="how often new local data is looked "
                          "for while online (the upload's latency in a live session)")
    backoff_base_s: float = Field(0.5, gt=0, description="first wait after a failed upload")
    backoff_cap_s: float = Field(30.0, gt=0, description="longest wait between attempts")
    chunk_max_items: int = Field(64, ge=1, le=1024, description="stored rows per chunk")
    chunk_max_bytes: int = Field(1 << 20, ge=4096, le=4 << 20, description="bytes per chunk")
    request_timeout_s: float = Field(20.0, gt=0, description="one request to the central "
                                     "service, connecting included")
    relay: bool = Field(True, description="relay live frames to the central service while "
                        "online (the therapist watches there)")
    seed: int | None = Field(None, description="seed of the backoff jitter (tests)")

    @field_validator("central_url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ValueError("give the central service's http(s):// base URL")
        return v

    def ws_url(self) -> str:
        """The central service's live relay endpoint."""
        base = "wss" + self.central_url[5:] if self.central_url.startswith("https") else \
            "ws" + self.central_url[4:]
        return base + "/ws/ingest/live"
