"""``pulsegate video run``: the endoscopy video pipeline with its live view, stand-alone."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pulsegate.cli import Commands, example
from pulsegate.commands.model import endoscopy_model_args, endoscopy_model_dir


def register(cmds: Commands) -> None:
    v = example(cmds.top.add_parser("video", help="endoscopy video analysis"),
                "pulsegate video run --source examples/video/kvasir-demo.mp4").add_subparsers(
        dest="video_cmd", metavar="ACTION", required=True
    )
    r = v.add_parser("run", help="run the video pipeline with its live view, standalone")
    r.add_argument("--source", required=True, help="video file (looped), camera index or rtsp/http URL")
    r.add_argument("--port", type=int, default=8090, help="live view port (0: any free port)")
    r.add_argument("--host", default="127.0.0.1", help="live view address to listen on")
    r.add_argument("--room", default="demo", help="procedure room name shown on the live view")
    r.add_argument("--fps-limit", type=float, default=30.0, help="most frames analysed per second")
    r.add_argument("--users-file", type=Path, help="local accounts (pulsegate user add NAME --role clinician); "
                   "without it the live view is open and only on loopback")
    r.add_argument("--tls-cert", help="certificate (path or credential:NAME); needed off loopback")
    r.add_argument("--tls-key", help="private key (path or credential:NAME)")
    endoscopy_model_args(r)
    example(r, "pulsegate video run --source examples/video/kvasir-demo.mp4   # then open http://127.0.0.1:8090/",
            "pulsegate video run --source 0 --room endo-2 --port 8091      # camera 0")
    r.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from clinical.endoscopy.postprocess import PolypFinding
    from clinical.endoscopy.segmodel import load_verified
    from edge.video.liveview import LIVE_RULES, LiveView
    from edge.video.pipeline import VideoPipeline
    from runtime.logs import get_logger, setup
    from runtime.ports import PortInUseError
    from runtime.security.config import AuthSection, TlsSection
    from runtime.security.listener import ListenerSecurity, secure_listener
    from runtime.supervisor import Supervisor

    setup("info", component="video")
    log = get_logger("video.run")
    model_dir, keys = endoscopy_model_dir(args)
    runner, manifest = load_verified(model_dir, keys, args.threads)

    def on_finding(f: PolypFinding) -> None:
        log.info("finding", room=f.room, present=f.present, confidence=round(f.confidence, 3),
                 area=round(f.area, 4), box=f.box)

    security: ListenerSecurity | None = None
    if args.users_file is not None or args.tls_cert is not None:
        tls = TlsSection(cert=args.tls_cert, key=args.tls_key or "") if args.tls_cert else None
        try:
            security = secure_listener("live", args.host, AuthSection(users_file=args.users_file), tls, LIVE_RULES)
        except ValueError as exc:
            print(f"pulsegate video run: {exc}", file=sys.stderr)
            return 2
    else:
        from runtime.security.policy import check_listener

        try:
            check_listener("live", args.host, auth=False, tls=False, insecure_no_auth=False)
        except ValueError as exc:
            print(f"pulsegate video run: {exc} (--users-file, --tls-cert/--tls-key)", file=sys.stderr)
            return 2
    pipe = VideoPipeline(args.source, runner, on_finding, args.room, fps_limit=args.fps_limit)
    live = LiveView(pipe.latest, pipe.status, args.room, args.host, args.port, max_fps=args.fps_limit,
                    security=security, port_key="--port")
    scheme = security.scheme if security is not None else "http"
    print(f"live view: {scheme}://{args.host}:{args.port}/  (model {manifest.name} {manifest.version})", flush=True)
    try:
        return asyncio.run(Supervisor([live, pipe]).run())
    except PortInUseError as exc:
        print(f"pulsegate video: {exc}", file=sys.stderr)
        return 1

