"""``pulsegate bench ...``: benchmarks that print figures (the code lives in bench/).

    pulsegate bench ambulance --minutes 60 --link-profile tunnel [--json]   cellular budget, notices, tunnels
    pulsegate bench codecs [--json]                                 decode throughput of every device codec
    pulsegate bench edge --beds 64 --wearables 200 [--json]         sample -> local alarm latency on the real pipeline
    pulsegate bench ingest --points 200000 [--json]                 InfluxDB write rate, straight vs the whole uplink
    pulsegate bench outage --beds 64 --offline 60 [--broker-kill] [--ingest-down] [--json]
                                                                    a gateway loses its broker: loss, doubles, drain
    pulsegate bench faults --runs 20 [--fault NAME] [--json]        the receipts fault matrix, fresh processes per run
    pulsegate bench soak --beds 64 --hours 1 [--json]               hours with faults: RSS, open files, outbox, loss
    pulsegate bench video --source FILE [--pace free] [--json]      endoscopy fps and frame-to-overlay latency
    pulsegate bench replay [--patients 20 --hours 10 | --csv F] [--json]   replay rows/s, stage per-sample latency
    pulsegate bench wire [--beds 64] [--json]                       size and speed of the wire encodings
    pulsegate bench influx-writers [--points N] [--json]            HTTP vs influxdb-client on /api/v2/write
    pulsegate bench fleet --gateways 1000 --beds-per-gateway 32 --minutes 5 [--workers 1,2,4] [--raw] [--json]
                                                                    a fleet of emulated gateways through broker,
                                                                    ingest workers and influxd
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from pulsegate.cli import Commands, example
from pulsegate.commands.model import endoscopy_model_args, endoscopy_model_dir


def register(cmds: Commands) -> None:
    b = cmds.bench
    p = b.add_parser("ambulance", help="an ambulance on a cellular link (accelerated clock): bytes/h, notices, loss")
    p.add_argument("--minutes", type=float, default=60.0, help="simulated minutes")
    p.add_argument("--link-profile", choices=("urban", "rural", "tunnel"), default="urban",
                   help="the cellular link: urban, rural (slower, lossier) or tunnel (a 5-minute cut)")
    p.add_argument("--accel", type=float, default=60.0, help="simulated seconds per real second")
    p.add_argument("--budget", type=int, default=64 * 1024, help="bytes per hour (0: no governor, the 'before')")
    p.add_argument("--seed", type=int, default=0, help="seed of the patient scenario and the route")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_ambulance)
    example(p, "pulsegate bench ambulance --minutes 60 --link-profile tunnel --json",
            "pulsegate bench ambulance --budget 0 --json   # without the budget governor (the 'before')")

    p = b.add_parser("codecs", help="decode throughput of every device codec (MB/s, frames/s)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--scale", type=float, default=1.0, help="stream size factor")
    p.add_argument("--repeats", type=int, default=3, help="runs per codec; the best is reported")
    p.set_defaults(handler=_codecs)
    example(p, "pulsegate bench codecs", "pulsegate bench codecs --scale 4 --json")

    p = b.add_parser("edge", help="emulated monitors + wearables through the real pipeline to the local bus")
    p.add_argument("--beds", type=int, default=64, help="emulated bedside monitors")
    p.add_argument("--wearables", type=int, default=200, help="emulated BLE wearables")
    p.add_argument("--duration", type=float, default=30.0, help="seconds per run")
    p.add_argument("--no-model", action="store_true", help="without the anomaly model")
    p.add_argument("--model", type=Path, help="vitals-anomaly model dir (default: the newest shipped)")
    p.add_argument("--find-max", action="store_true",
                   help="then double the beds until p99 alarm latency passes 100 ms; report the largest passing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_edge)
    example(p, "pulsegate bench edge --beds 64 --wearables 200 --json", "pulsegate bench edge --find-max")

    p = b.add_parser("ingest", help="InfluxDB write rate: straight vs through outbox, MQTT and ingest")
    p.add_argument("--points", type=int, default=200_000, help="points written in each of the two runs")
    p.add_argument("--per-message", type=int, default=500, help="points per uplink message")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_ingest)
    example(p, "pulsegate bench ingest --points 200000 --json")

    p = b.add_parser("outage", help="a gateway loses its broker for S seconds: loss, doubles, drain time")
    p.add_argument("--beds", type=int, default=64, help="emulated beds sending summaries and alarms")
    p.add_argument("--offline", type=float, default=60.0, help="seconds without the broker")
    p.add_argument("--broker-kill", action="store_true",
                   help="kill the broker with SIGKILL (a crash) instead of stopping it (SIGTERM)")
    p.add_argument("--ingest-down", action="store_true",
                   help="stop the ingest 2 s before the broker goes (messages wait in the broker), restart it after")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_outage)
    example(p, "pulsegate bench outage --beds 64 --offline 60", "pulsegate bench outage --broker-kill --json")

    p = b.add_parser("faults", help="the fault matrix of the receipts, N times with fresh processes")
    p.add_argument("--runs", type=int, default=5, help="how many times the whole matrix runs")
    p.add_argument("--fault", action="append", default=None, help="only this fault class (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_faults)
    example(p, "pulsegate bench faults --runs 20 --json", "pulsegate bench faults --runs 3 --fault lost_receipt")

    p = b.add_parser("soak", help="a ward gateway for hours with faults at intervals: RSS, files, outbox, loss")
    p.add_argument("--beds", type=int, default=64, help="emulated beds of the ward gateway")
    p.add_argument("--hours", type=float, default=1.0, help="how long it runs")
    p.add_argument("--fault-every", type=float, default=300.0, help="seconds between faults")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_soak)
    example(p, "pulsegate bench soak --beds 64 --hours 1 --json")

    p = b.add_parser("video", help="video pipeline fps and latency (frame captured -> overlay ready)")
    p.add_argument("--source", required=True, help="video file, camera index or rtsp/http URL")
    p.add_argument("--frames", type=int, default=600, help="frames to analyse")
    p.add_argument("--pace", choices=("native", "free"), default="native",
                   help="files: play at their frame rate (native) or decode flat out (free)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    endoscopy_model_args(p)
    p.set_defaults(handler=_video)
    example(p, "pulsegate bench video --source examples/video/kvasir-demo.mp4",
            "pulsegate bench video --source examples/video/kvasir-demo.mp4 --pace free --json")

    p = b.add_parser("influx-writers", help="the HTTP and influxdb-client v2 writers against the same server")
    p.add_argument("--points", type=int, default=200_000, help="points each writer sends")
    p.add_argument("--repeats", type=int, default=3, help="runs per writer; the best is reported")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_influx_writers)
    example(p, "pulsegate bench influx-writers --json")

    p = b.add_parser("fleet", help="N emulated gateways -> mosquitto -> K ingest workers -> influxd")
    p.add_argument("--gateways", type=int, default=1000, help="emulated gateways")
    p.add_argument("--beds-per-gateway", type=int, default=32, help="beds each emulated gateway sends for")
    p.add_argument("--minutes", type=int, default=5, help="emulated minutes of traffic")
    p.add_argument("--workers", default="1", help="ingest worker processes; a list (1,2,4) runs each in turn")
    p.add_argument("--raw", action="store_true", help="also raw numerics (every bed and parameter, 1 Hz)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="emulated seconds per wall second (1 = real time; 60 = a minute per second)")
    p.add_argument("--publishers", type=int, default=2, help="processes the emulated gateways are spread over")
    p.add_argument("--influx-pause", type=float, default=0.0, help="SIGSTOP influxd for S seconds mid-run")
    p.add_argument("--receive-maximum", type=int, default=2000, help="MQTT 5 Receive Maximum of each worker")
    p.add_argument("--contract", type=int, choices=(1, 2), default=2,
                   help="2: a record leaves a gateway's outbox on the ingest's receipt; 1: at the broker's PUBACK")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_fleet)
    example(p, "pulsegate bench fleet --gateways 1000 --beds-per-gateway 32 --minutes 5 --workers 1,2,4 --json",
            "pulsegate bench fleet --gateways 200 --speed 60 --influx-pause 30")

    p = b.add_parser("replay", help="replay rows/s (wall and CPU) and the stage's per-sample latency")
    p.add_argument("--csv", type=Path, help="a replay CSV (default: generate ward scenarios)")
    p.add_argument("--patients", type=int, default=20, help="generated patients (default %(default)s)")
    p.add_argument("--hours", type=float, default=10.0, help="hours per generated patient")
    p.add_argument("--seed", type=int, default=9101, help="seed of the generated ward (default %(default)s)")
    p.add_argument("--order", choices=("grouped", "sorted", "shuffled"), default="grouped",
                   help="row order of the generated file")
    p.add_argument("--profile", help="alarm profile (default: the config's default, the smart adult profile)")
    p.add_argument("--config", type=Path, help="TOML file whose [clinical] table sets the profiles")
    p.add_argument("--model", type=Path, help="vitals-anomaly model dir (default: none; the rules only)")
    p.add_argument("--latency-rows", type=int, default=200_000,
                   help="rows of the per-sample latency pass (0: skip it)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_replay)
    example(p, "pulsegate bench replay --patients 20 --hours 10",
            "pulsegate bench replay --csv ward.csv --model models/vitals-anomaly/2.0.0 --json")

    p = b.add_parser("wire", help="size and speed of the wire encodings")
    p.add_argument("--beds", type=int, default=64, help="beds per summary message")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_wire)
    example(p, "pulsegate bench wire", "pulsegate bench wire --beds 256 --json")


def _print(result: dict[str, object], as_json: bool, width: int = 32) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:{width}} {v}")


def _codecs(args: argparse.Namespace) -> int:
    from bench.codecs import run

    result = run(scale=args.scale, repeats=args.repeats)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        codecs = result["codecs"]
        assert isinstance(codecs, dict)
        for name, fig in codecs.items():
            print(f"{name:12s} {fig['mb_per_s']:8.2f} MB/s {fig['frames_per_s']:10,} frames/s")
    return 0 if result["serial_codecs_meet_floor"] else 1


def _edge(args: argparse.Namespace) -> int:
    from bench.edge_latency import run_bench
    from wire.model_manifest import newest_model_dir

    model = None if args.no_model else (args.model or newest_model_dir(Path("models"), "vitals-anomaly"))
    _print(run_bench(args.beds, args.wearables, args.duration, model, find_max=args.find_max), args.json)
    return 0


def _replay(args: argparse.Namespace) -> int:
    import sys

    from bench.replay_speed import run, table
    from pulsegate.commands.replay import load_clinical_config

    cfg = load_clinical_config(args.config, args.profile)
    scorer = None
    if args.model is not None:
        from clinical.anomaly import VitalsAnomalyModel
        from clinical.litert import ModelError
        from wire.model_manifest import ManifestError

        try:
            scorer = VitalsAnomalyModel(args.model)
        except (ModelError, ManifestError) as exc:
            print(str(exc), file=sys.stderr)
            return 2
    r = run(csv=args.csv, seed=args.seed, patients=args.patients, hours=args.hours, order=args.order, config=cfg,
            scorer=scorer, latency_rows=args.latency_rows)
    print(json.dumps(r) if args.json else table(r))
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from bench.reliability import bench_ingest

    result = asyncio.run(bench_ingest(args.points, args.per_message))
    _print(result, args.json, 28)
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 else 1


def _outage(args: argparse.Namespace) -> int:
    from bench.reliability import bench_outage

    result = asyncio.run(bench_outage(args.beds, args.offline, broker_kill=args.broker_kill,
                                      ingest_down=args.ingest_down))
    _print(result, args.json, 28)
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 else 1


def _faults(args: argparse.Namespace) -> int:
    from bench.faults import FAULTS, bench_faults

    unknown = sorted(set(args.fault or []) - set(FAULTS))
    if unknown:
        print(f"unknown fault class {unknown[0]!r}; known: {', '.join(FAULTS)}")
        return 2
    result = asyncio.run(bench_faults(args.runs, args.fault))
    _print(result, args.json, 12)
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 and result["failed"] == 0 else 1


def _soak(args: argparse.Namespace) -> int:
    from bench.soak import bench_soak

    result = asyncio.run(bench_soak(args.beds, args.hours, args.fault_every))
    _print(result, args.json, 32)
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 else 1


def _influx_writers(args: argparse.Namespace) -> int:
    from bench.influx_writers import bench_writers

    _print(asyncio.run(bench_writers(args.points, repeats=args.repeats)), args.json)
    return 0


def _fleet(args: argparse.Namespace) -> int:
    from bench.fleet import run_fleet

    ok = True
    for k in (int(x) for x in str(args.workers).split(",")):
        result = asyncio.run(run_fleet(args.gateways, args.beds_per_gateway, args.minutes, workers=k, raw=args.raw,
                                       speed=args.speed, publishers=args.publishers,
                                       influx_pause_s=args.influx_pause, receive_maximum=args.receive_maximum,
                                       contract=args.contract))
        _print(result, args.json)
        ok = ok and result["lost"] == 0 and result["duplicates"] == 0
    return 0 if ok else 1


def _video(args: argparse.Namespace) -> int:
    from bench.video_fps import bench_video

    model_dir, keys = endoscopy_model_dir(args)
    _print(bench_video(args.source, model_dir, keys, args.frames, args.threads, args.pace), args.json, 16)
    return 0


def _wire(args: argparse.Namespace) -> int:
    from bench.wire_sizes import run

    print(json.dumps(run(args.beds), indent=None if args.json else 2))
    return 0


def _ambulance(args: argparse.Namespace) -> int:
    from bench.ambulance import run

    r = asyncio.run(run(args.minutes, args.link_profile, args.accel, args.budget, args.seed))
    print(json.dumps(r) if args.json else "\n".join(f"{k}: {v}" for k, v in r.items()))
    bad = r["alarms_lost"] or r["summaries_lost"] or r["notices_lost"]
    return 1 if bad else 0
