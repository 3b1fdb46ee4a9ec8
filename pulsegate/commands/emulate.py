"""``pulsegate emulate ...``: the device emulators (firmware_bridge/emulators) on ptys, TCP or MQTT.

    pulsegate emulate masimo|nonin|philips [--scenario S] [--seed N] [--speed X] [--link PATH] [--duration S]
    pulsegate emulate hl7 --port P [--host H] [--beds 3,4] [--period S] ...
    pulsegate emulate wearable --port P [--host H] [--prefix T] [--device MAC ...] [--json] ...
    pulsegate emulate gps [--route city|rural|tunnel] [--minutes M] [--speed X] [--link PATH] [--duration S]

Serial emulators print the pty path (a stable symlink) on the first stdout line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from pulsegate.cli import Commands, example

SCENARIOS = ("stable", "deterioration", "desaturation", "probe_off", "artifact", "cable_pull")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", choices=SCENARIOS, default="stable", help="what the patient/probe does")
    p.add_argument("--seed", type=int, default=0, help="scenario seed (same seed, same values)")
    p.add_argument("--speed", type=float, default=1.0, help="scenario time per real second (1 = real time)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0 = until Ctrl-C)")


def _wait(duration: float, status: object) -> None:
    deadline = time.monotonic() + duration if duration > 0 else float("inf")
    try:
        while time.monotonic() < deadline:
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass
    print(json.dumps(status() if callable(status) else status), file=sys.stderr)


def _serial(args: argparse.Namespace) -> int:
    from firmware_bridge.emulators.pty import open_pty_emulator

    emu = open_pty_emulator(args.device, args.scenario, seed=args.seed, speed=args.speed, link=args.link)
    print(emu.path, flush=True)
    print(f"{args.device} emulator on {emu.path} -> {emu.pts} (scenario {args.scenario}, seed {args.seed}, "
          f"speed {args.speed}); Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        _wait(args.duration, lambda: {"bytes_out": emu.bytes_out, "bytes_in": emu.bytes_in, "plugs": emu.plug_count})
    finally:
        emu.stop()
    return 0


def _hl7(args: argparse.Namespace) -> int:
    from firmware_bridge.emulators.hl7 import Hl7Sender
    from firmware_bridge.emulators.scenarios import make_scenario

    sender = Hl7Sender(args.host, args.port, make_scenario(args.scenario, args.seed), beds=args.beds.split(","),
                       period_s=args.period, speed=args.speed).start()
    print(f"mllp://{args.host}:{args.port}", flush=True)
    try:
        _wait(args.duration, lambda: {"sent": sender.sent, "acked": sender.acked, "nacked": sender.nacked,
                                      "connects": sender.connects})
    finally:
        sender.stop()
    return 0


def _wearable(args: argparse.Namespace) -> int:
    from firmware_bridge.emulators.scenarios import make_scenario
    from firmware_bridge.emulators.wearable import WearablePublisher

    pub = WearablePublisher(args.host, args.port, make_scenario(args.scenario, args.seed),
                            devices=args.device or None, prefix=args.prefix, period_s=args.period,
                            speed=args.speed, json_form=args.json).start()
    print(f"mqtt://{args.host}:{args.port}/{args.prefix}", flush=True)
    try:
        _wait(args.duration, lambda: {"published": pub.published})
    finally:
        pub.stop()
    return 0


def _gps(args: argparse.Namespace) -> int:
    from firmware_bridge.emulators.gps import GpsEmulator, make_route
    from firmware_bridge.emulators.pty import PtyEmulator
    from firmware_bridge.emulators.scenarios import make_scenario

    route = make_route(args.route, args.minutes)
    dev = GpsEmulator(route, talker=args.talker)
    emu = PtyEmulator(dev, make_scenario("stable"), speed=args.speed, link=args.link).start()
    print(emu.path, flush=True)
    tunnels = ", ".join(f"{a:.0f}-{b:.0f} s" for a, b in route.tunnel_windows()) or "none"
    print(f"GPS (NMEA 0183 RMC/GGA/VTG, {args.talker} talker) on {emu.path} -> {emu.pts}: route {args.route}, "
          f"{route.duration_s / 60:.1f} min, no fix {tunnels}; speed x{args.speed}; Ctrl-C to stop",
          file=sys.stderr, flush=True)
    try:
        _wait(args.duration, lambda: {"bursts": dev.bursts, "bytes_out": emu.bytes_out})
    finally:
        emu.stop()
    return 0


def register(cmds: Commands) -> None:
    for proto, text in (("philips", "Philips IntelliVue MIB/RS232 monitor (answers association and polls)"),
                        ("masimo", "Masimo Rad-8 ASCII 1 oximeter"), ("nonin", "Nonin OEM III oximeter")):
        p = cmds.emulate.add_parser(proto, help=f"{text} on a pty")
        _common(p)
        p.add_argument("--link", help="path of the stable symlink to the pty (default: a temp dir)")
        p.set_defaults(handler=_serial)
        example(p, f"pulsegate emulate {proto} --scenario desaturation --link /tmp/{proto}0   # then a device "
                   f"with port = \"/tmp/{proto}0\"")
    p = cmds.emulate.add_parser("hl7", help="central station sending HL7 ORU^R01 over MLLP to a gateway")
    _common(p)
    p.add_argument("--host", default="127.0.0.1", help="the gateway's MLLP listener")
    p.add_argument("--port", type=int, default=2575, help="the gateway's MLLP port")
    p.add_argument("--beds", default="3", help="comma-separated PV1-3 beds to send for")
    p.add_argument("--period", type=float, default=1.0, help="seconds between messages (scenario time)")
    p.set_defaults(handler=_hl7)
    example(p, "pulsegate emulate hl7 --port 2575 --beds 3,4 --scenario deterioration")
    p = cmds.emulate.add_parser("wearable", help="BLE-to-MQTT bridge publishing GATT health characteristics")
    _common(p)
    p.add_argument("--host", default="127.0.0.1", help="the gateway's local MQTT bus")
    p.add_argument("--port", type=int, default=1883, help="the local bus port")
    p.add_argument("--prefix", default="pulsegate/ble", help="topic prefix")
    p.add_argument("--device", action="append", help="BLE id to emulate (repeatable)")
    p.add_argument("--period", type=float, default=1.0, help="seconds between notifications (scenario time)")
    p.add_argument("--json", action="store_true", help="publish the JSON form instead of raw bytes")
    p.set_defaults(handler=_wearable)
    example(p, "pulsegate emulate wearable --port 1883 --device C4:7C:8D:6A:12:34 --scenario stable")
    p = cmds.emulate.add_parser("gps", help="GPS receiver (NMEA 0183) driving a route, tunnel included, on a pty")
    p.add_argument("--route", choices=("city", "rural", "tunnel"), default="city",
                   help="which emulated route (tunnel: a stretch with no fix)")
    p.add_argument("--minutes", type=float, default=20.0, help="how long the route takes at its speeds")
    p.add_argument("--speed", type=float, default=1.0, help="route time per real second")
    p.add_argument("--talker", choices=("GP", "GN"), default="GP", help="NMEA talker id of the sentences")
    p.add_argument("--link", help="path of the stable symlink to the pty (default: a temp dir)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0 = until Ctrl-C)")
    p.set_defaults(handler=_gps)
    example(p, "pulsegate emulate gps --route tunnel --speed 10 --link /tmp/gps0   # then a [ambulance.gps] device")
