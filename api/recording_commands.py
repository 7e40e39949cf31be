"""`lumbo replay`, `lumbo reanalyze` (and, from recordings.commands, `lumbo import`, `lumbo export`,
`lumbo sessions`): the recordings side of the command line.

- `lumbo replay SESSION [--speed X]`: the service, with the stored session replayed as the live
  session's sensor source (pages and WebSocket as for `lumbo demo`); its results become a new
  analysis (kind `replay`) of the session when the replay ends.
- `lumbo replay SESSION --analyze [--realtime] [--speed X]`: no service: the same pipeline and
  feedback engine over the stored batches (as fast as possible unless `--realtime`), stored as a
  new analysis (kind `replay`), summary printed.
- `lumbo reanalyze SESSION`: the offline analysis (`processing.offline`), stored as a new
  analysis (kind `offline`).

Nothing ever overwrites a session's samples or an earlier analysis; `lumbo sessions SESSION`
lists a session's analyses. Exit codes: 0 done, 1 not possible (no such session, storage,
no calibration movement found).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from recordings.commands import add_data_dir_option, location
from recordings.commands import add_subcommands as add_transfer_subcommands
from recordings.errors import SessionNotFound, StorageError
from recordings.store import RecordingStore


def _err(message: str) -> int:
    print(f"lumbo: {message}", file=sys.stderr)
    return 1


def _speed(text: str) -> float:
    value = float(text)
    if not 0 < value <= 50:
        raise argparse.ArgumentTypeError("must be in (0, 50]")
    return value


def add_subcommands(sub: Any) -> None:
    """`import`, `export`, `sessions`, `replay`, `reanalyze` on the `lumbo` subparsers."""
    add_transfer_subcommands(sub)
    p = sub.add_parser(
        "replay", help="replay a stored session through the live pipeline (service or --analyze)",
        description="Replay a stored session as the sensor source of a live session: the "
                    "service runs with it (open the printed pages), paced by the samples' times "
                    "÷ --speed. With --analyze no service runs: the same pipeline and feedback "
                    "engine process it (as fast as possible unless --realtime). Either way the "
                    "results are stored as a new analysis of the session (kind 'replay'); the "
                    "session itself is never changed.")
    p.add_argument("session", help="session id or a unique prefix of it (`lumbo sessions`)")
    p.add_argument("--speed", type=_speed, default=1.0, help="playback speed; default 1")
    p.add_argument("--realtime", action="store_true",
                   help="--analyze: pace by the samples' times (÷ speed) instead of full speed")
    p.add_argument("--analyze", action="store_true",
                   help="re-analyse without the service; print a summary")
    p.add_argument("--level", type=int, default=None,
                   help="exercise level for the feedback engine (default 1)")
    p.add_argument("--reps-per-set", type=int, default=None, help="repetitions per set")
    p.add_argument("--host", default="127.0.0.1", help="service: address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="service: port (default 8000)")
    p.add_argument("--log-level", default="warning",
                   choices=["critical", "error", "warning", "info", "debug"])
    add_data_dir_option(p)
    p.set_defaults(func=cmd_replay)

    r = sub.add_parser(
        "reanalyze", help="analyse a stored session again (offline) and store it as a new analysis",
        description="Run the offline analysis (calibration found in the recording, lumbar "
                    "angles, repetitions) over a stored session's raw samples and store the "
                    "result as a new analysis beside its others (kind 'offline').")
    r.add_argument("session", help="session id or a unique prefix of it")
    add_data_dir_option(r)
    r.set_defaults(func=cmd_reanalyze)


def _store(args: argparse.Namespace) -> RecordingStore:
    return RecordingStore(location(args))


def cmd_reanalyze(args: argparse.Namespace) -> int:
    from api.recording import reanalyze
    from processing.calibration import CalibrationError

    try:
        with _store(args) as store:
            rec = store.session(args.session)
            aid, summary = reanalyze(store, rec.id)
    except SessionNotFound as exc:
        return _err(str(exc.args[0]))
    except CalibrationError as exc:
        return _err(f"cannot analyse {args.session}: {exc}\nNothing was stored.")
    except StorageError as exc:
        return _err(str(exc))
    print(aid)
    cf = summary["comfortable_flexion_deg"]
    print(f"session {rec.id}: analysis {aid} (offline): {summary['angle_frames']} angle "
          f"frames, {summary['repetitions']} repetitions, comfortable flexion "
          f"{'-' if cf is None else f'{cf:.1f}°'}", file=sys.stderr)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    if args.analyze:
        return _replay_analyze(args)
    return _replay_serve(args)


def _replay_analyze(args: argparse.Namespace) -> int:
    from api.recording import replay_analysis

    def progress(t: float) -> None:
        print(f"\r  replayed to t = {t:.1f} s", end="", file=sys.stderr, flush=True)

    try:
        with _store(args) as store:
            rec = store.session(args.session)
            res = replay_analysis(store, rec.id, speed=args.speed, realtime=args.realtime,
                                  level=args.level, reps_per_set=args.reps_per_set,
                                  progress=progress if sys.stderr.isatty() else None)
    except SessionNotFound as exc:
        return _err(str(exc.args[0]))
    except StorageError as exc:
        return _err(str(exc))
    if res.analysis_id is None:
        return _err(f"replay of {args.session}: {res.error}")
    types: dict[str, int] = {}
    for _, t, _ in res.events:
        types[t] = types.get(t, 0) + 1
    cal = next((p for _, t, p in res.events if t == "calibration_done"), None)
    print(res.analysis_id)
    print(f"session {rec.id}: analysis {res.analysis_id} (replay): "
          f"{sum(len(a) for a in res.angles)} angle frames; calibration "
          + ("not found" if cal is None else
             f"comfortable flexion {cal.get('comfortable_flexion_deg') or 0:.1f}°")
          + f"; {types.get('repetition_scored', 0)} repetitions scored, "
            f"{types.get('set_completed', 0)} sets completed", file=sys.stderr)
    return 0


def _replay_serve(args: argparse.Namespace) -> int:
    """The service with the replay as its autostarted session, as `lumbo demo` runs."""
    from api import cli
    from api.schema import StartSessionRequest
    from api.settings import Settings

    try:
        with _store(args) as store:
            rec = store.session(args.session)
    except SessionNotFound as exc:
        return _err(str(exc.args[0]))
    except StorageError as exc:
        return _err(str(exc))
    if rec.samples == 0:
        return _err(f"session {rec.id} has no samples to replay")
    req = StartSessionRequest(source="replay", session_id=rec.id, speed=args.speed,
                              realtime=True, level=args.level, reps_per_set=args.reps_per_set)
    overrides: dict[str, Any] = {"host": args.host, "port": args.port, "autostart": req}
    if args.level is not None:
        overrides["default_level"] = args.level
    if args.data_dir:
        overrides["data_dir"] = Path(args.data_dir).expanduser()
    if getattr(args, "db", None):
        overrides["db"] = args.db
    elif args.data_dir:
        overrides["db"] = None  # --data-dir names the database too (not $LUMBO_DB)
    settings = _with_demo_patient(Settings.from_env(**overrides))
    title = f"Lumbo replay of session {rec.id} ({(rec.duration_s or 0) / 60:.1f} min)"
    return _run(settings, title, args.log_level, cli)


def _with_demo_patient(settings: Any) -> Any:
    """Let the demo's patient see the replay (api/auth: a session belongs to a patient)."""
    auth = getattr(settings, "auth", None)
    if auth is None or not hasattr(auth, "autostart_patient") or auth.autostart_patient:
        return settings
    try:
        from api.auth.cli import DEMO_PATIENT
    except ImportError:  # pragma: no cover - accounts not available
        return settings
    return settings.model_copy(update={"auth": auth.model_copy(
        update={"autostart_patient": DEMO_PATIENT})})


def _run(settings: Any, title: str, log_level: str, cli: Any) -> int:
    """uvicorn with the app, as `lumbo demo`; the pages as one-time sign-in links."""
    import uvicorn

    from api.app import create_app

    app = create_app(settings)
    urls = None
    try:
        from api.auth.cli import demo_login_urls

        base = f"http://{settings.host if settings.host not in ('0.0.0.0', '::') else '127.0.0.1'}"
        urls = demo_login_urls(app, f"{base}:{settings.port}")
    except (ImportError, AttributeError):  # pragma: no cover - no accounts
        pass
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level,
                            ws_ping_interval=5.0, ws_ping_timeout=10.0)
    if urls:
        lines = [title] + [f"  {name + ':':<16}{url}" for name, url in urls]
        lines.append("  Stop with Ctrl+C.")
        width = max(len(x) for x in lines)
        print("=" * width, *lines, "=" * width, sep="\n", flush=True)
    else:
        cli._print_banner(title, settings.host, settings.port)
    uvicorn.Server(config).run()
    return 0
