"""`lumbo create-therapist`, `lumbo create-patient`, `lumbo login-link`; the demo's accounts.

The first run of a clinic: `lumbo create-therapist NAME` (asks for the password twice, or reads
one line with `--password-stdin`), then the therapist signs in and adds patients on the page or
with `lumbo create-patient NAME --therapist T`. Accounts go to the recordings database (`--db`
URL or `--data-dir`, else $LUMBO_DB, else the data directory $LUMBO_DATA_DIR or
~/.local/share/lumbo), which a running service shares.

Exit codes: 0 done, 1 not possible (username taken, no such therapist, storage), 2 bad input
(username or password policy, passwords differ, no terminal to ask on).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from api.auth.service import AuthError, AuthService
from recordings.accounts import AccountStore
from recordings.errors import StorageError

DEMO_THERAPIST = "demo-therapist"
DEMO_PATIENT = "demo-patient"
DEMO_LINK_LIFETIME_S = 1800.0


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _service(args: argparse.Namespace) -> AuthService:
    from recordings.paths import storage_location

    return AuthService(AccountStore(storage_location(getattr(args, "db", None), args.data_dir)))


def _read_password(args: argparse.Namespace, who: str) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CliError("no password on standard input", 2)
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for the password on: use --password-stdin", 2)
    first = getpass.getpass(f"Password for {who}: ")
    if getpass.getpass("Repeat the password: ") != first:
        raise CliError("the passwords differ; nothing was created", 2)
    return first


def _run(fn: Any, args: argparse.Namespace) -> int:
    try:
        return fn(args)
    except CliError as exc:
        print(f"lumbo {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except AuthError as exc:
        print(f"lumbo {args.command}: {exc}", file=sys.stderr)
        return 2 if exc.status == 422 else 1
    except StorageError as exc:
        print(f"lumbo {args.command}: {exc}", file=sys.stderr)
        return 1


def cmd_create_therapist(args: argparse.Namespace) -> int:
    def run(args: argparse.Namespace) -> int:
        auth = _service(args)
        if auth.store.by_username(args.username) is not None:
            raise CliError(f"the username {args.username!r} is taken", 1)
        password = _read_password(args, args.username)
        t = auth.create_therapist(args.username, password, args.display_name)
        print(f"Therapist {t.username} created (id {t.id}) in {auth.store.location}. "
              "Sign in at the login page of `lumbo serve`.")
        return 0

    return _run(run, args)


def cmd_create_patient(args: argparse.Namespace) -> int:
    def run(args: argparse.Namespace) -> int:
        auth = _service(args)
        therapist = auth.store.by_username(args.therapist)
        if therapist is None or therapist.role != "therapist":
            raise CliError(f"no therapist {args.therapist!r}", 1)
        if auth.store.by_username(args.username) is not None:
            raise CliError(f"the username {args.username!r} is taken", 1)
        password = None if args.no_password else _read_password(args, args.username)
        p = auth.create_patient(args.username, therapist.id, password, args.display_name)
        how = ("signs in by one-time links (`lumbo login-link`)" if password is None
               else "signs in with the password")
        print(f"Patient {p.username} of {therapist.username} created (id {p.id}); {how}.")
        return 0

    return _run(run, args)


def cmd_login_link(args: argparse.Namespace) -> int:
    def run(args: argparse.Namespace) -> int:
        auth = _service(args)
        account = auth.store.by_username(args.username)
        if account is None or not account.active:
            raise CliError(f"no active account {args.username!r}", 1)
        token, _ = auth.make_link(account, args.next, created_by="lumbo login-link")
        minutes = int(auth.settings.link_lifetime_s // 60)
        print(f"{args.base_url.rstrip('/')}/login/link?token={token}")
        print(f"(works once, for {minutes} minutes, on the service using {auth.store.location})",
              file=sys.stderr)
        return 0

    return _run(run, args)


def add_account_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from recordings.commands import add_db_option

    data_dir_help = "data directory (default: $LUMBO_DATA_DIR, else ~/.local/share/lumbo)"

    p = sub.add_parser(
        "create-therapist", help="create a therapist account (first run)",
        description="Create a therapist account in the data directory's database. The password "
                    "is asked twice on the terminal, or read from the first line of standard "
                    "input with --password-stdin. Exit codes: 1 username taken, 2 bad input.")
    p.add_argument("username", help="3–64 letters, digits and . _ @ -")
    p.add_argument("--display-name", default="", help="how the pages name the therapist")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from standard input (scripts)")
    p.add_argument("--data-dir", type=Path, default=None, help=data_dir_help)
    add_db_option(p)
    p.set_defaults(func=cmd_create_therapist)

    p = sub.add_parser(
        "create-patient", help="create a patient account of a therapist",
        description="Create a patient of THERAPIST. Therapists can also add patients on the "
                    "REST API (POST /api/patients). Exit codes: 1 username taken or no such "
                    "therapist, 2 bad input.")
    p.add_argument("username", help="3–64 letters, digits and . _ @ -")
    p.add_argument("--therapist", required=True, metavar="T", help="the therapist's username")
    p.add_argument("--display-name", default="", help="how the pages name the patient")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--password-stdin", action="store_true",
                       help="read the password from standard input (scripts)")
    group.add_argument("--no-password", action="store_true",
                       help="no password: the patient signs in by one-time login links")
    p.add_argument("--data-dir", type=Path, default=None, help=data_dir_help)
    add_db_option(p)
    p.set_defaults(func=cmd_create_patient)

    p = sub.add_parser(
        "login-link", help="print a one-time sign-in link for an account",
        description="Print a link that signs USERNAME in once, within 10 minutes, on the "
                    "service that uses the same data directory (a patient's display, or a "
                    "therapist who forgot their password and has access to this machine).")
    p.add_argument("username")
    p.add_argument("--next", default="/", help="page to open (default /; /therapist for a "
                   "therapist)")
    p.add_argument("--base-url", default="http://127.0.0.1:8000",
                   help="where the service is reached (default http://127.0.0.1:8000)")
    p.add_argument("--data-dir", type=Path, default=None, help=data_dir_help)
    add_db_option(p)
    p.set_defaults(func=cmd_login_link)


# --- the demo --------------------------------------------------------------------------------

def ensure_demo_accounts(auth: AuthService) -> tuple[Any, Any]:
    """The demo therapist and their demo patient, created if missing (idempotent). Their
    password is random, printed and kept nowhere: the demo signs in by one-time links."""
    import secrets

    t = auth.store.by_username(DEMO_THERAPIST)
    if t is None:
        t = auth.create_therapist(DEMO_THERAPIST, secrets.token_urlsafe(24), "Demo therapist")
    p = auth.store.by_username(DEMO_PATIENT)
    if p is None:
        p = auth.create_patient(DEMO_PATIENT, t.id, secrets.token_urlsafe(24), "Demo patient")
    if p.therapist_id != t.id or p.role != "patient" or t.role != "therapist":
        raise RuntimeError(f"the accounts {DEMO_THERAPIST!r}/{DEMO_PATIENT!r} exist but are not "
                           "the demo's therapist and patient; use another data directory")
    if not t.active:
        t = auth.set_active(t, True)
    if not p.active:
        p = auth.set_active(p, True)
    return t, p


def ensure_demo_companions(auth: AuthService, count: int) -> list[Any]:
    """`count` more demo patients of the demo therapist (`demo-patient-2`, ...), idempotent."""
    import secrets

    t, _ = ensure_demo_accounts(auth)
    out = []
    for n in range(2, count + 2):
        username = f"{DEMO_PATIENT}-{n}"
        p = auth.store.by_username(username)
        if p is None:
            p = auth.create_patient(username, t.id, secrets.token_urlsafe(24),
                                    f"Demo patient {n}")
        if p.therapist_id != t.id or p.role != "patient":
            raise RuntimeError(f"the account {username!r} exists but is not a demo patient; use "
                               "another data directory")
        out.append(p if p.active else auth.set_active(p, True))
    return out


async def start_demo_companions(app: Any, count: int) -> None:
    """Simulated sessions for the companion demo patients, each with its own seed and speed, so
    the therapist's at-a-glance view shows several patients moving differently."""
    from api.schema import StartSessionRequest

    for i, patient in enumerate(ensure_demo_companions(app.state.auth, count)):
        req = StartSessionRequest(source="simulated", script="demo", seed=101 + i,
                                  speed=0.8 + 0.15 * i, loop=True, realtime=True)
        await app.state.manager.start(req, patient_id=patient.id)


def demo_login_urls(app: Any, base: str) -> list[tuple[str, str]]:
    """Banner lines of `lumbo demo`: the pages as one-time login links (30 minutes)."""
    auth: AuthService = app.state.auth
    t, p = ensure_demo_accounts(auth)
    out = []
    for name, account, page in (("Patient page", p, "/"), ("Therapist page", t, "/therapist")):
        token, _ = auth.make_link(account, page, created_by="lumbo demo",
                                  lifetime_s=DEMO_LINK_LIFETIME_S)
        out.append((name, f"{base}/login/link?token={token}"))
    return out


def demo_banner_urls(app: Any, urls: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The banner's page URLs as login links when the app runs the demo's accounts."""
    auth = getattr(app.state, "auth", None)
    if auth is None or not auth.settings.demo_accounts:
        return urls
    base = urls[0][1].rstrip("/")
    links = dict(demo_login_urls(app, base))
    return [(name, links.get(name, url)) for name, url in urls]
