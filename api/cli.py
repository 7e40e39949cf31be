"""The `lumbo` command line. Subcommands: `demo` (the service with the simulated patient already
practising; `--ble` through bleak and a simulated BlueZ), `serve` (the service; sessions are
started from the pages or REST; `--upper/--lower` for BLE sensors) and `scan` (BLE sensors
nearby). Later subcommands (analyze, replay, import, export) get their own `_add_<name>`
function here."""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence

from api.auth.config import AuthSettings
from api.practice_models import PracticeStart
from api.schema import StartSessionRequest
from api.settings import Settings

# The simulated patient's calibration bend (80° of trunk flexion, half of it lumbar) measures a
# comfortable lumbar flexion of about 40°; level 1 (40 % of it) is what the demo's bends aim at.
DEMO_LEVEL = 1


def _urls(host: str, port: int) -> list[tuple[str, str]]:
    shown = host
    if host in ("0.0.0.0", "::", ""):
        shown = socket.gethostname()
    elif ":" in host:
        shown = f"[{host}]"
    base = f"http://{shown}:{port}"
    return [("Patient page", f"{base}/"), ("Therapist page", f"{base}/therapist"),
            ("API docs", f"{base}/docs")]


def _print_banner(title: str, host: str, port: int, app: object = None) -> None:
    urls = _urls(host, port)
    if app is not None:  # the demo: its pages as one-time login links (api/auth/cli.py)
        from api.auth.cli import demo_banner_urls

        urls = demo_banner_urls(app, urls)
    lines = [title] + [f"  {name + ':':<16}{url}" for name, url in urls]
    if urls != _urls(host, port):
        lines.append("  (the page links sign in once, within 30 minutes)")
    lines.append("  Stop with Ctrl+C.")
    width = max(len(s) for s in lines)
    print("=" * width, *lines, "=" * width, sep="\n", flush=True)


def _run(settings: Settings, title: str, log_level: str) -> int:
    import uvicorn

    from api.app import create_app

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        ws_ping_interval=5.0,
        ws_ping_timeout=10.0,
    )
    server = uvicorn.Server(config)
    _print_banner(title, settings.host, settings.port, app=app)
    server.run()
    return 0


def _add_server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (0.0.0.0 for the clinic network); default 127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="port; default 8000")
    p.add_argument("--log-level", default="warning",
                   choices=["critical", "error", "warning", "info", "debug"])
    from recordings.commands import add_db_option

    add_db_option(p)


def _db(args: argparse.Namespace) -> dict[str, object]:
    """The `--db` override of Settings (else $LUMBO_DB, else the data directory's lumbo.db)."""
    return {"db": args.db} if getattr(args, "db", None) else {}


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value <= 50:
        raise argparse.ArgumentTypeError("must be in (0, 50]")
    return value


def _broker_url(text: str) -> str:
    from api.broker import check_broker_url

    try:
        return check_broker_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_demo(args: argparse.Namespace) -> int:
    if getattr(args, "ble", False):
        from api.ble_commands import cmd_demo_ble

        def make_settings(**overrides: object) -> Settings:
            return Settings.from_env(host=args.host, port=args.port, default_level=args.level,
                                     auth=AuthSettings(demo_accounts=True), **_db(args),
                                     **overrides)

        return cmd_demo_ble(args, make_settings, _print_banner, args.log_level)
    # graded practice (api/practice.py): the simulated patient performs the demo patient's day's
    # program once; --classic: the single flexion exercise, looping
    practice = None if getattr(args, "classic", False) else PracticeStart(mode="program")
    autostart = StartSessionRequest(
        source="simulated", script="demo", speed=args.speed, seed=args.seed,
        loop=True, realtime=True, level=args.level, practice=practice,
    )
    settings = Settings.from_env(host=args.host, port=args.port, autostart=autostart,
                                 default_level=args.level, auth=AuthSettings(demo_accounts=True),
                                 demo_companions=args.companions, **_db(args))
    return _run(settings, "Lumbo demo: a simulated patient is practising", args.log_level)


def cmd_serve(args: argparse.Namespace) -> int:
    from api.ble_commands import serve_settings, serve_title

    ble = serve_settings(args, getattr(args, "_parser", None))
    # several instances sharing live views (api/broker.py); else $LUMBO_BROKER
    broker = {"broker": args.broker} if getattr(args, "broker", None) else {}
    settings = Settings.from_env(host=args.host, port=args.port, default_level=args.level, **ble,
                                 **broker, **_db(args))
    return _run(settings, serve_title(ble), args.log_level)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lumbo",
        description="Lumbo: wearable-sensor movement feedback for chronic low back pain.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo", help="run the service with a simulated patient practising (looping, real time)",
        description="Start the service and a live session on the simulated patient's demo "
                    "script (calibration, then sets of forward bends), looping in real time.",
    )
    _add_server_options(demo)
    demo.add_argument("--speed", type=_positive, default=1.0, help="simulation speed; default 1")
    demo.add_argument("--seed", type=int, default=0, help="simulated patient's seed; default 0")
    demo.add_argument("--level", type=int, default=DEMO_LEVEL,
                      help=f"exercise level; default {DEMO_LEVEL}")
    demo.add_argument("--classic", action="store_true",
                      help="the single flexion exercise in a loop instead of today's program")
    demo.add_argument("--companions", type=int, choices=range(0, 21), default=2,
                      metavar="N", help="this many more simulated patients practise at the same "
                      "time, for the therapist's at-a-glance view (0-20); default 2")
    demo.set_defaults(func=cmd_demo)
    _add_demo_ble_options(demo)

    serve = sub.add_parser(
        "serve", help="run the service (start sessions from the pages or the REST API)",
        description="Start the service without a session; sessions are started from the pages "
                    "or POST /api/session/start. With --upper/--lower (or --ble) they use BLE "
                    "sensors instead of the simulated patient.",
    )
    _add_server_options(serve)
    serve.add_argument("--level", type=int, default=DEMO_LEVEL,
                       help=f"default exercise level for new sessions; default {DEMO_LEVEL}")
    serve.add_argument("--broker", type=_broker_url, metavar="redis://HOST:PORT/DB",
                       help="Redis shared with the other instances of this service: a therapist "
                            "on any instance watches a patient live on another (default: "
                            "$LUMBO_BROKER, else none)")
    serve.set_defaults(func=cmd_serve, _parser=serve)
    _add_serve_ble_options(serve)
    _add_analyze(sub)
    _add_accounts(sub)
    _add_edge(sub)
    _add_scan(sub)
    _add_recordings(sub)
    return parser


def _add_accounts(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from api.auth.cli import add_account_commands

    add_account_commands(sub)


def _add_edge(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`edge`, `create-device-token`, `device-tokens`, `revoke-device-token` (edge_commands)."""
    from api.edge_commands import add_subcommands

    add_subcommands(sub, _add_server_options, _add_serve_ble_options, DEMO_LEVEL)


def _add_analyze(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from api.analyze_command import cmd_analyze, target, window

    p = sub.add_parser(
        "analyze", help="lumbar angles and repetitions of a raw recording (interchange CSV)",
        description="Analyse a raw two-sensor recording offline: calibrate (found automatically "
                    "or from --neutral/--bend), compute the lumbar angles at every lower-sensor "
                    "sample and detect repetitions. Exit codes: 2 unreadable file, 3 missing "
                    "sensor, 4 too short, 5 no usable calibration, 6 bad options.",
    )
    p.add_argument("raw", metavar="RAW.csv", help="raw interchange CSV (gzip/xz by suffix)")
    p.add_argument("--out", required=True, metavar="ANGLES.csv", help="angles CSV to write")
    p.add_argument("--reps", metavar="REPS.json", help="repetitions and calibration as JSON")
    p.add_argument("--neutral", type=window, metavar="START:END",
                   help="quiet neutral standing window (s), with --bend")
    p.add_argument("--bend", type=window, metavar="START:END",
                   help="slow forward bend window (s), with --neutral")
    p.add_argument("--calibration", metavar="CAL.json",
                   help="use a saved calibration (a REPS.json of the same recording, or its "
                        "'calibration' object)")
    p.add_argument("--target", type=target, action="append", metavar="DIRECTION:DEG",
                   help="target for repositioning errors, e.g. flexion:30 (repeatable)")
    p.set_defaults(func=cmd_analyze)


def _add_recordings(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`import`, `export`, `sessions`, `replay`, `reanalyze` (api/recording_commands.py)."""
    from api.recording_commands import add_subcommands

    add_subcommands(sub)


def _add_scan(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from api.ble_commands import add_scan

    add_scan(sub)


def _add_serve_ble_options(serve: argparse.ArgumentParser) -> None:
    from api.ble_commands import add_serve_options

    add_serve_options(serve)


def _add_demo_ble_options(demo: argparse.ArgumentParser) -> None:
    from api.ble_commands import add_demo_options

    add_demo_options(demo)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
