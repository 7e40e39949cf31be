"""The edge's HTTP client of the central service's ingest routes (api/routes/ingest.py).

Blocking (httpx), used from the uploader's own thread. Every failure is sorted into what the
uploader does about it:
- `CentralUnreachable`: no answer (link down, connection cut mid-request, timeout) or a server
  error / 429 / 503: nothing is known to be wrong with the data; back off and try again;
- `SeqConflict` (409): the central service expects another chunk number; re-read its cursor;
- `CentralRefused` (any other 4xx): this request will not succeed as it is (token revoked,
  session id taken, a bug); the uploader says so and tries again much later.
"""

from __future__ import annotations

from typing import Any

import httpx

from recordings.chunks import MEDIA_TYPE


class CentralError(Exception):
    status: int | None = None


class CentralUnreachable(CentralError):
    """No usable answer: try again later."""


class CentralRefused(CentralError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class SeqConflict(CentralError):
    status = 409

    def __init__(self, message: str, stream: str | None, expected_seq: int | None) -> None:
        super().__init__(message)
        self.stream = stream
        self.expected_seq = expected_seq


class CentralClient:
    """`base_url` (https://central:8000) with a device token."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 20.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, timeout=httpx.Timeout(timeout_s),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "lumbo-edge"},
            transport=transport, follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:  # the answer's JSON
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:  # connect, read, write, timeouts, protocol errors
            raise CentralUnreachable(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code < 300:
            try:
                return resp.json()
            except ValueError:
                raise CentralUnreachable("the central service answered something that is not "
                                         "JSON") from None
        try:
            body = resp.json()
        except ValueError:
            body = {}
        detail = body.get("detail", resp.text[:200]) if isinstance(body, dict) else str(body)
        message = f"{method} {path}: {resp.status_code} {detail}"
        if resp.status_code == 409:
            raise SeqConflict(message, body.get("stream"), body.get("expected_seq"))
        if resp.status_code >= 500 or resp.status_code in (408, 425, 429):
            raise CentralUnreachable(message)
        raise CentralRefused(message, resp.status_code)

    def whoami(self) -> dict[str, Any]:
        return self._call("GET", "/api/ingest/me")

    def announce(self, session_id: str, meta: dict[str, Any]) -> dict[str, Any]:
        return self._call("PUT", f"/api/ingest/sessions/{session_id}", json=meta)

    def cursor(self, session_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/ingest/sessions/{session_id}/cursor")

    def send_chunk(self, session_id: str, body: bytes) -> dict[str, Any]:
        return self._call("POST", f"/api/ingest/sessions/{session_id}/chunks", content=body,
                          headers={"Content-Type": MEDIA_TYPE})

    def end(self, session_id: str, status: str, ended_at: str | None,
            streams: dict[str, int]) -> dict[str, Any]:
        return self._call("POST", f"/api/ingest/sessions/{session_id}/end",
                          json={"status": status, "ended_at": ended_at, "streams": streams})
