"""Accounts and access: who is signed in (middleware), what they may see (deps), and how.

- `config.AuthSettings`: lifetimes, rate limits, cookie flags (part of `api.settings.Settings`).
- `passwords`: argon2id hashing (argon2-cffi, RFC 9106 parameters) and the password policy.
- `service.AuthService`: accounts, sign-in sessions, bearer tokens, one-time login links.
- `ratelimit.LoginLimiter`: bounded failed-sign-in counters per username+address and address.
- `middleware.AuthMiddleware`: every HTTP request and WebSocket is authenticated here, before
  routing (secure by default: a new route needs no decorator to be protected), and cookie-
  authenticated state changes and WebSockets must come from this site's Origin (CSRF).
- `deps`: FastAPI dependencies that authorise (therapist only, the patient in scope, the
  patient's live sessions); `live`: the same for `/ws/live`.

Kept free of imports at package level so `api.settings` can import `api.auth.config`.
"""
