"""The `lumbo` command line. Subcommands: `demo` (the service with the simulated patient already
practising) and `serve` (the service; sessions are started from the pages or REST). Later
subcommands (scan, analyze, replay, import, export) get their own `_add_<name>` function here."""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence

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


def _print_banner(title: str, host: str, port: int) -> None:
    lines = [title] + [f"  {name + ':':<16}{url}" for name, url in _urls(host, port)]
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
    _print_banner(title, settings.host, settings.port)
    server.run()
    return 0


def _add_server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (0.0.0.0 for the clinic network); default 127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="port; default 8000")
    p.add_argument("--log-level", default="warning",
                   choices=["critical", "error", "warning", "info", "debug"])


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value <= 50:
        raise argparse.ArgumentTypeError("must be in (0, 50]")
    return value


def cmd_demo(args: argparse.Namespace) -> int:
    autostart = StartSessionRequest(
        source="simulated", script="demo", speed=args.speed, seed=args.seed,
        loop=True, realtime=True, level=args.level,
    )
    settings = Settings.from_env(host=args.host, port=args.port, autostart=autostart,
                                 default_level=args.level)
    return _run(settings, "Lumbo demo: a simulated patient is practising", args.log_level)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env(host=args.host, port=args.port, default_level=args.level)
    return _run(settings, "Lumbo is running", args.log_level)


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
    demo.set_defaults(func=cmd_demo)

    serve = sub.add_parser(
        "serve", help="run the service (start sessions from the pages or the REST API)",
        description="Start the service without a session; the simulated source is chosen from "
                    "the page or POST /api/session/start for now.",
    )
    _add_server_options(serve)
    serve.add_argument("--level", type=int, default=DEMO_LEVEL,
                       help=f"default exercise level for new sessions; default {DEMO_LEVEL}")
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
