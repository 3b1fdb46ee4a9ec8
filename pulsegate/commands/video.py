"""``pulsegate video run``: the endoscopy video pipeline with its live view, stand-alone."""

from __future__ import annotations

import argparse
import sys

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
    endoscopy_model_args(r)
    example(r, "pulsegate video run --source examples/video/kvasir-demo.mp4   # then open http://127.0.0.1:8090/",
            "pulsegate video run --source 0 --room endo-2 --port 8091      # camera 0")
    r.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from clinical.endoscopy.postprocess import PolypFinding
    from clinical.endoscopy.segmodel import load_verified
    from edge.video.liveview import LiveView
    from edge.video.pipeline import VideoPipeline
    from runtime.logs import get_logger, setup
    from runtime.ports import PortInUseError
    from runtime.supervisor import Supervisor

    setup("info", component="video")
    log = get_logger("video.run")
    model_dir, keys = endoscopy_model_dir(args)
    runner, manifest = load_verified(model_dir, keys, args.threads)

    def on_finding(f: PolypFinding) -> None:
        log.info("finding", room=f.room, present=f.present, confidence=round(f.confidence, 3),
                 area=round(f.area, 4), box=f.box)

    pipe = VideoPipeline(args.source, runner, on_finding, args.room, fps_limit=args.fps_limit)
    live = LiveView(pipe.latest, pipe.status, args.room, args.host, args.port, max_fps=args.fps_limit,
                    port_key="--port")
    print(f"live view: http://{args.host}:{args.port}/  (model {manifest.name} {manifest.version})", flush=True)
    try:
        return asyncio.run(Supervisor([live, pipe]).run())
    except PortInUseError as exc:
        print(f"pulsegate video: {exc}", file=sys.stderr)
        return 1
