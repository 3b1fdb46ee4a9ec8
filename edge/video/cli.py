"""Commands of the video area: ``bench video``, ``model eval endoscopy-seg``, ``video run``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pulsegate.cli import Commands

from .config import DEFAULT_MODELS_DIR, DEFAULT_TRUSTED_KEYS, MODEL_NAME


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-dir", type=Path, help="a model version directory (default: newest under --models-dir)")
    p.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR, help="default: %(default)s")
    p.add_argument("--trusted-key", type=Path, action="append", help="public key(s) (default: the development key)")
    p.add_argument("--threads", type=int, default=2, help="LiteRT threads (default: %(default)s)")


def _model_dir(args: argparse.Namespace) -> tuple[Path, list[Path]]:
    from .segmodel import resolve_model_dir

    model_dir = args.model_dir or resolve_model_dir(args.models_dir)
    return model_dir, list(args.trusted_key or DEFAULT_TRUSTED_KEYS)


def register(cmds: Commands) -> None:
    b = cmds.bench.add_parser("video", help="video pipeline fps and latency (frame captured -> overlay ready)")
    b.add_argument("--source", required=True, help="video file, camera index or rtsp/http URL")
    b.add_argument("--frames", type=int, default=600)
    b.add_argument("--pace", choices=("native", "free"), default="native",
                   help="files: play at their frame rate (native) or decode flat out (free)")
    b.add_argument("--json", action="store_true")
    _model_args(b)
    b.set_defaults(handler=_bench)

    ev = cmds.model_group("eval", "evaluate a model on held-out or your own data")
    e = ev.add_parser(MODEL_NAME, help="Dice/IoU/sensitivity/specificity over a folder of images and masks")
    e.add_argument("--images", type=Path, required=True)
    e.add_argument("--masks", type=Path, required=True, help="grey-scale masks with the images' file stems")
    e.add_argument("--list", type=Path, help="evaluate only the image names in this file (e.g. val.txt)")
    e.add_argument("--threshold", type=float, default=0.5)
    e.add_argument("--min-area", type=float, default=0.005, help="smallest region counted as a finding")
    e.add_argument("--json", action="store_true")
    _model_args(e)
    e.set_defaults(handler=_eval)

    v = cmds.top.add_parser("video", help="endoscopy video analysis").add_subparsers(
        dest="video_cmd", metavar="ACTION", required=True
    )
    r = v.add_parser("run", help="run the video pipeline with its live view, standalone")
    r.add_argument("--source", required=True, help="video file (looped), camera index or rtsp/http URL")
    r.add_argument("--port", type=int, default=8090)
    r.add_argument("--host", default="127.0.0.1")
    r.add_argument("--room", default="demo")
    r.add_argument("--fps-limit", type=float, default=30.0)
    _model_args(r)
    r.set_defaults(handler=_run)


def _bench(args: argparse.Namespace) -> int:
    from .bench import bench_video

    model_dir, keys = _model_dir(args)
    res = bench_video(args.source, model_dir, keys, args.frames, args.threads, args.pace)
    if args.json:
        print(json.dumps(res))
    else:
        for k, val in res.items():
            print(f"{k:16} {val}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .evaluate import EvalError, evaluate
    from .segmodel import load_verified

    model_dir, keys = _model_dir(args)
    runner, manifest = load_verified(model_dir, keys, args.threads)
    names = None
    if args.list is not None:
        names = [n.strip() for n in args.list.read_text().splitlines() if n.strip()]
    try:
        res = evaluate(runner, args.images, args.masks, names, args.threshold, args.min_area)
    except EvalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    figures = {"model": manifest.name, "version": manifest.version, **res.figures()}
    if args.json:
        print(json.dumps(figures))
    else:
        for k, val in figures.items():
            print(f"{k:12} {val}")
        if res.skipped:
            print(f"skipped (unreadable or no mask): {', '.join(res.skipped[:20])}", file=sys.stderr)
    return 0 if res.n else 1


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from pulsegate.logs import get_logger, setup
    from pulsegate.supervisor import Supervisor

    from .liveview import LiveView
    from .pipeline import VideoPipeline
    from .postprocess import PolypFinding
    from .segmodel import load_verified

    setup("info", component="video")
    log = get_logger("video.run")
    model_dir, keys = _model_dir(args)
    runner, manifest = load_verified(model_dir, keys, args.threads)

    def on_finding(f: PolypFinding) -> None:
        log.info("finding", room=f.room, present=f.present, confidence=round(f.confidence, 3),
                 area=round(f.area, 4), box=f.box)

    pipe = VideoPipeline(args.source, runner, on_finding, args.room, fps_limit=args.fps_limit)
    live = LiveView(pipe.latest, pipe.status, args.room, args.host, args.port, max_fps=args.fps_limit)
    print(f"live view: http://{args.host}:{args.port}/  (model {manifest.name} {manifest.version})", flush=True)
    return asyncio.run(Supervisor([live, pipe]).run())
