"""`lumbo edge` (the patient's machine) and the device-token commands (the central service):
`lumbo create-device-token PATIENT`, `lumbo device-tokens PATIENT`, `lumbo revoke-device-token
PATIENT ID`. Wired into api/cli.py; the work is in api/edge.py and api/auth/devices.py.

Exit codes: 0 done; 1 not possible (no such patient or token, storage); 2 bad input (token file
missing, empty or not a device token; options that do not go together).
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api.auth.devices import DEVICE_TOKEN_PREFIX

EDGE_LINK_LIFETIME_S = 1800.0


def _fail(command: str, message: str, code: int) -> int:
    print(f"lumbo {command}: {message}", file=sys.stderr)
    return code


def read_token_file(path: Path) -> str:
    """The device token in `path` (first line); ValueError saying what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the token file {path}: {exc.strerror or exc}") from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not token.startswith(DEVICE_TOKEN_PREFIX):
        raise ValueError(f"{path} does not hold a device token (one line starting with "
                         f"{DEVICE_TOKEN_PREFIX}; `lumbo create-device-token` on the central "
                         "service makes one)")
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            print(f"lumbo edge: warning: {path} can be read by other users; "
                  f"`chmod 600 {path}`", file=sys.stderr)
    except OSError:
        pass
    return token


# --- lumbo edge --------------------------------------------------------------------------------

def cmd_edge(args: argparse.Namespace) -> int:
    from api.ble_commands import serve_settings
    from api.edge_config import EdgeSettings
    from api.settings import Settings

    try:
        token = read_token_file(Path(args.token_file))
    except ValueError as exc:
        return _fail("edge", str(exc), 2)
    if args.simulated and (args.ble or args.upper or args.lower):
        return _fail("edge", "--simulated and BLE sensors (--ble, --upper/--lower) exclude "
                     "each other", 2)
    ble = serve_settings(args, getattr(args, "_parser", None))
    try:
        edge = EdgeSettings(central_url=args.central, token=token, patient=args.patient,
                            poll_s=args.poll, relay=not args.no_relay,
                            chunk_max_items=args.chunk_items, backoff_cap_s=args.retry_max,
                            backoff_base_s=min(0.5, args.retry_max))
    except ValueError as exc:
        return _fail("edge", str(exc).splitlines()[-1] if str(exc) else "bad options", 2)
    db = {"db": args.db} if getattr(args, "db", None) else {}
    settings = Settings.from_env(host=args.host, port=args.port, default_level=args.level,
                                 edge=edge, **ble, **db)
    return _serve(settings, args.log_level)


def _serve(settings: Any, log_level: str) -> int:
    import uvicorn

    from api.app import create_app
    from api.auth.service import AuthService
    from api.edge import ensure_local_patient
    from recordings.accounts import AccountStore

    location = settings.database() if hasattr(settings, "database") else settings.data_dir
    if location is not None:  # the local accounts first (the app would warn there are none)
        auth = AuthService(AccountStore(location))
        ensure_local_patient(auth, settings.edge.patient)
        auth.close()
    app = create_app(settings)
    runtime = app.state.edge
    shown = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    base = f"http://{shown}:{settings.port}"
    token, _ = app.state.auth.make_link(runtime.patient, "/", created_by="lumbo edge",
                                        lifetime_s=EDGE_LINK_LIFETIME_S)
    lines = [f"Lumbo edge: {runtime.patient.username}'s sessions go to {runtime.central}",
             f"  {'Patient page:':<16}{base}/login/link?token={token}",
             "  (the link signs in once, within 30 minutes; `lumbo login-link "
             f"{runtime.patient.username}` makes another)",
             f"  {'Upload status:':<16}{base}/api/edge/status",
             "  Stop with Ctrl+C: what is not uploaded yet goes at the next start."]
    width = max(len(s) for s in lines)
    print("=" * width, *lines, "=" * width, sep="\n", flush=True)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level,
                            ws_ping_interval=5.0, ws_ping_timeout=10.0)
    uvicorn.Server(config).run()
    return 0


# --- device tokens (the central service) ----------------------------------------------------

def _auth(args: argparse.Namespace) -> Any:
    from api.auth.service import AuthService
    from recordings.accounts import AccountStore
    from recordings.paths import storage_location

    return AuthService(AccountStore(storage_location(getattr(args, "db", None),
                                                     args.data_dir)))


def _patient(auth: Any, username: str) -> Any:
    account = auth.store.by_username(username)
    if account is None or account.role != "patient":
        raise LookupError(f"no patient {username!r}")
    return account


def _storage_errors(fn: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    def run(args: argparse.Namespace) -> int:
        from recordings.errors import StorageError

        try:
            return fn(args)
        except LookupError as exc:
            return _fail(args.command, str(exc.args[0] if exc.args else exc), 1)
        except StorageError as exc:
            return _fail(args.command, str(exc), 1)
    return run


@_storage_errors
def cmd_create_device_token(args: argparse.Namespace) -> int:
    auth = _auth(args)
    patient = _patient(auth, args.patient)
    token, rec = auth.devices.create(patient, args.label, created_by="lumbo create-device-token")
    if args.out:
        out = Path(args.out)
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            auth.devices.revoke(patient.id, rec.id)
            return _fail(args.command, f"cannot create {out}: {exc.strerror or exc} (the token "
                         "was revoked again)", 1)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(token + "\n")
        print(f"Device token {rec.id} for {patient.username} written to {out}; copy it to the "
              f"patient's machine and run `lumbo edge --central URL --token-file FILE`.")
    else:
        print(token)
        print(f"(device token {rec.id} for {patient.username}: shown once; put it in a file "
              "for `lumbo edge --token-file`)", file=sys.stderr)
    return 0


@_storage_errors
def cmd_device_tokens(args: argparse.Namespace) -> int:
    import datetime as dt

    auth = _auth(args)
    patient = _patient(auth, args.patient)

    def when(t: float | None) -> str:
        return "-" if t is None else dt.datetime.fromtimestamp(t, dt.UTC).strftime(
            "%Y-%m-%d %H:%M")

    rows = auth.devices.of_patient(patient.id)
    print(f"{'ID':<16}{'LABEL':<24}{'CREATED':<18}{'LAST USED':<18}STATE")
    for t in rows:
        state = "active" if t.active else f"revoked {when(t.revoked_at)}"
        print(f"{t.id:<16}{t.label[:23]:<24}{when(t.created_at):<18}{when(t.last_used_at):<18}"
              f"{state}")
    return 0


@_storage_errors
def cmd_revoke_device_token(args: argparse.Namespace) -> int:
    auth = _auth(args)
    patient = _patient(auth, args.patient)
    if not auth.devices.revoke(patient.id, args.id):
        return _fail(args.command, f"{patient.username} has no active device token {args.id}", 1)
    print(f"Device token {args.id} of {patient.username} revoked.")
    return 0


def add_subcommands(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                    server_options: Callable[[argparse.ArgumentParser], None],
                    ble_options: Callable[[argparse.ArgumentParser], None],
                    default_level: int) -> None:
    from recordings.commands import add_data_dir_option

    p = sub.add_parser(
        "edge", help="run the service on the patient's machine and upload to a central one",
        description="Run the service as `lumbo serve` does (patient page on this machine, BLE "
                    "sensors or the simulated patient, every session recorded locally) and "
                    "upload every session of the local patient to the central service: raw "
                    "samples bit for bit, angles, events, calibrations, reports and the final "
                    "status, buffered here while offline and sent without loss or duplicates "
                    "when the link returns. Live frames are relayed there while online.")
    p.add_argument("--central", required=True, metavar="URL",
                   help="the central service, e.g. https://central:8000")
    p.add_argument("--token-file", required=True, metavar="FILE",
                   help="file with the device token (`lumbo create-device-token` on the "
                        "central service)")
    p.add_argument("--patient", default="home-patient", metavar="USERNAME",
                   help="the local account whose sessions are uploaded (created if missing); "
                        "default home-patient")
    p.add_argument("--simulated", action="store_true",
                   help="sessions use the simulated patient (the default without BLE options)")
    p.add_argument("--poll", type=float, default=0.5, metavar="S",
                   help="how often new data is looked for while online; default 0.5 s")
    p.add_argument("--no-relay", action="store_true", help="do not relay live frames")
    p.add_argument("--chunk-items", type=int, default=64, metavar="N",
                   help="stored rows per upload request (1-1024); default 64")
    p.add_argument("--retry-max", type=float, default=30.0, metavar="S",
                   help="longest wait between upload attempts while the central service is "
                        "unreachable (jittered exponential backoff); default 30 s")
    server_options(p)
    p.add_argument("--level", type=int, default=default_level,
                   help=f"default exercise level for new sessions; default {default_level}")
    p.set_defaults(func=cmd_edge, _parser=p)
    ble_options(p)

    p = sub.add_parser(
        "create-device-token", help="a device token for a patient's edge (lumbo edge)",
        description="Make a long-lived token with which `lumbo edge` on PATIENT's machine "
                    "uploads into PATIENT's records (and can do nothing else). Printed once "
                    "(or written to --out, mode 600); stored only as its hash; revoke it with "
                    "`lumbo revoke-device-token`. Exit codes: 1 no such patient.")
    p.add_argument("patient", metavar="PATIENT", help="the patient's username")
    p.add_argument("--label", default="", help="which machine it is for")
    p.add_argument("--out", metavar="FILE", help="write the token to FILE (created, mode 600)")
    add_data_dir_option(p)
    p.set_defaults(func=cmd_create_device_token)

    p = sub.add_parser("device-tokens", help="list a patient's device tokens",
                       description="The device tokens of PATIENT (ids, labels, last use; never "
                                   "the tokens).")
    p.add_argument("patient", metavar="PATIENT")
    add_data_dir_option(p)
    p.set_defaults(func=cmd_device_tokens)

    p = sub.add_parser("revoke-device-token", help="revoke a device token at once",
                       description="The token stops working at once; what it uploaded stays. "
                                   "Exit codes: 1 no such active token.")
    p.add_argument("patient", metavar="PATIENT")
    p.add_argument("id", metavar="ID", help="the token's id (`lumbo device-tokens PATIENT`)")
    add_data_dir_option(p)
    p.set_defaults(func=cmd_revoke_device_token)
