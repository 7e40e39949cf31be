"""Authentication of every HTTP request and WebSocket, before routing; CSRF by Origin.

Pure ASGI (no BaseHTTPMiddleware: WebSockets and streaming pass through untouched). For each
connection it finds the credential (`Authorization: Bearer ...` for scripts, else the session
cookie), resolves it to a `Principal` (stored in the scope under `PRINCIPAL`) and then:

- public routes (sign-in, the login pages, their static assets, liveness, the API description)
  pass with or without a principal;
- everything else without a principal is refused: `/api/...` with 401, a WebSocket with a
  401 denial response (or close code 1008 where the server cannot send one), a page with a
  redirect to `/login?next=...`;
- a cookie-authenticated request that changes state (POST, PUT, PATCH, DELETE) and every
  cookie-authenticated WebSocket must carry this site's Origin (or, for HTTP, Referer): with
  SameSite=Strict cookies this is the second, independent CSRF defence, and for WebSockets
  (which SameSite does not cover in every browser, and which browsers let any page open) the
  defence against cross-site WebSocket hijacking. A credential-less POST (sign-in) with a
  foreign Origin is refused as well (login CSRF). Bearer requests carry no ambient credential
  and need no Origin.

Every HTTP response gets `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` (with
`frame-ancestors 'none'`: no clickjacking of the pages) and `Referrer-Policy: same-origin`;
API responses get `Cache-Control: no-store` so patient data is not kept in caches.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import cookie_parser
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth.service import AuthService, Principal

PRINCIPAL = "lumbo.principal"
COOKIE_NAME = "lumbo_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

PUBLIC_ROUTES = frozenset({
    ("GET", "/login"),
    ("GET", "/login/link"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/token"),
    ("POST", "/api/auth/logout"),  # signing out without a session is a no-op, not an error
    ("GET", "/api/health"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
})
PUBLIC_PREFIXES = (("GET", "/static/"),)
# Edge mode (api/auth/devices.py): here, and only here, a device token is a credential; it never
# becomes a sign-in (`PRINCIPAL`), it is put in the scope under `DEVICE` for the routes.
DEVICE = "lumbo.device"
DEVICE_PREFIXES = ("/api/ingest/", "/ws/ingest/")


def is_public(method: str, path: str) -> bool:
    method = "GET" if method == "HEAD" else method
    if (method, path) in PUBLIC_ROUTES:
        return True
    return any(method == m and path.startswith(p) for m, p in PUBLIC_PREFIXES)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def request_origin(scope: Scope) -> str | None:
    """The Origin header, else the origin of the Referer (both absent: None)."""
    origin = _header(scope, b"origin")
    if origin:
        return origin
    referer = _header(scope, b"referer")
    if referer:
        parts = urlsplit(referer)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}"
        return "null"
    return None


def origin_allowed(scope: Scope, origin: str, allowed: Iterable[str]) -> bool:
    """Same host as the request (scheme-agnostic, as `api/routes/live.py`), or listed."""
    if origin in allowed:
        return True
    host = _header(scope, b"host") or ""
    netloc = urlsplit(origin).netloc
    return bool(netloc) and netloc.lower() == host.lower()


class AuthMiddleware:
    def __init__(self, app: ASGIApp, *, auth: AuthService,
                 allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.auth = auth
        self.allowed_origins = frozenset(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method = "WS" if kind == "websocket" else scope.get("method", "GET")
        principal, presented, stale_cookie = self._authenticate(scope)
        scope[PRINCIPAL] = principal
        device = self._device(scope, path)
        scope[DEVICE] = device

        refusal = None if device is not None else self._check_origin(scope, method, principal)
        if refusal is None and principal is None and device is None and \
                not is_public(method, path):
            refusal = self._unauthenticated(method, path, scope, presented)
        if refusal is not None:
            if stale_cookie:
                refusal.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
            if kind == "websocket":
                await self._deny_websocket(scope, receive, send, refusal)
            else:
                await refusal(scope, receive, self._with_headers(scope, send))
            return
        if kind == "websocket":
            await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, self._with_headers(scope, send))

    # --- who ------------------------------------------------------------------------------
    def _authenticate(self, scope: Scope) -> tuple[Principal | None, bool, bool]:
        """(principal, a credential was presented, a session cookie was presented but is not
        valid). An Authorization header is used alone: a bad bearer token does not fall back
        to the cookie."""
        authorization = _header(scope, b"authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer":
                return None, True, False
            return self.auth.resolve(token.strip(), "bearer"), True, False
        cookie = _header(scope, b"cookie")
        if cookie:
            token = cookie_parser(cookie).get(COOKIE_NAME)
            if token:
                principal = self.auth.resolve(token, "cookie")
                return principal, True, principal is None
        return None, False, False

    def _device(self, scope: Scope, path: str) -> Any:
        """The edge device of a device token on an ingest route (api/auth/devices.py), else
        None. A device token anywhere else is just an invalid bearer token."""
        if not path.startswith(DEVICE_PREFIXES):
            return None
        authorization = _header(scope, b"authorization") or ""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.auth.devices.resolve(token.strip())

    # --- CSRF and cross-site WebSockets ---------------------------------------------------
    def _check_origin(self, scope: Scope, method: str,
                      principal: Principal | None) -> Response | None:
        if method in SAFE_METHODS or (principal is not None and principal.kind == "bearer"):
            return None
        origin = request_origin(scope)
        if origin is not None and origin_allowed(scope, origin, self.allowed_origins):
            return None
        if origin is None and principal is None:
            return None  # no credential, no browser: nothing to forge (e.g. a script signing in)
        what = "WebSocket" if method == "WS" else "request"
        return JSONResponse(
            {"detail": f"Cross-site {what} refused: it must come from this site's pages "
                       "(the Origin header is missing or names another site)."},
            status_code=403)

    # --- refusals -------------------------------------------------------------------------
    @staticmethod
    def _unauthenticated(method: str, path: str, scope: Scope, presented: bool) -> Response:
        if method in ("GET", "HEAD") and not path.startswith(("/api/", "/ws/")):
            target = path + (("?" + scope["query_string"].decode("latin-1"))
                             if scope.get("query_string") else "")
            return RedirectResponse("/login?next=" + quote(target, safe=""), status_code=303)
        message = ("Your sign-in has ended; sign in again." if presented
                   else "Sign in first: this needs a therapist or patient account.")
        return JSONResponse({"detail": message}, status_code=401,
                            headers={"WWW-Authenticate": 'Bearer realm="lumbo"'})

    @staticmethod
    async def _deny_websocket(scope: Scope, receive: Receive, send: Send,
                              refusal: Response) -> None:
        if "websocket.http.response" in scope.get("extensions", {}):
            if refusal.status_code == 303:  # a redirect makes no sense to a WebSocket client
                refusal = JSONResponse({"detail": "Sign in first."}, status_code=401)
            await refusal(scope, receive, send)
        else:
            await send({"type": "websocket.close", "code": 1008,
                        "reason": "sign in first" if refusal.status_code != 403 else "origin"})

    @staticmethod
    def _with_headers(scope: Scope, send: Send) -> Send:
        api = scope.get("path", "").startswith("/api/")

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff"),
                         (b"x-frame-options", b"DENY"),
                         (b"referrer-policy", b"same-origin")]
                if b"content-security-policy" not in present:
                    extra.append((b"content-security-policy", b"frame-ancestors 'none'"))
                if api:
                    extra.append((b"cache-control", b"no-store"))
                headers += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        return wrapped
