"""``pulsegate bench codecs``: decode throughput of every codec on one core, as JSON.

Each codec gets a realistic byte stream made by its own emulator over a
deteriorating-patient scenario (values change every frame, so no decode cache
is flattered), fed in 4 KiB reads like a serial port delivers them. Figures:
decoded MB/s, frames/s (lines, packets, MLLP messages, GATT values) and
samples/s; the best of ``repeats`` runs. Floor for the serial codecs: 5 MB/s
(a ward of 100 monitors sends well under 1 MB/s).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

from firmware_bridge.codec import CodecStats, Decoder

FLOOR_MB_S = 5.0
SERIAL_CODECS = ("philips_mib", "masimo", "nonin_oem3")
CHUNK = 4096


def _masimo(n: int) -> tuple[bytes, Callable[[], Decoder]]:
    from firmware_bridge.emulators.masimo import MasimoEmulator
    from firmware_bridge.emulators.scenarios import make_scenario
    from firmware_bridge.masimo import MasimoDecoder

    emu = MasimoEmulator(make_scenario("deterioration", 1))
    return b"".join(emu.produce(float(i), 1.7e9 + i) for i in range(n)), MasimoDecoder


def _nonin(n: int) -> tuple[bytes, Callable[[], Decoder]]:
    from firmware_bridge.emulators.nonin import NoninEmulator
    from firmware_bridge.emulators.scenarios import make_scenario
    from firmware_bridge.nonin import NoninDecoder

    emu = NoninEmulator(make_scenario("deterioration", 1))
    return b"".join(emu.produce(i / 3.0, 0.0) for i in range(n)), NoninDecoder


def _philips(n: int) -> tuple[bytes, Callable[[], Decoder]]:
    from firmware_bridge.emulators.philips import PhilipsMonitorEmulator
    from firmware_bridge.emulators.scenarios import make_scenario
    from firmware_bridge.philips_framing import encode_frame
    from firmware_bridge.philips_mib import AARQ, mds_create_result, poll_request
    from firmware_bridge.philips_session import ASSOCIATED, PhilipsSession

    emu = PhilipsMonitorEmulator(make_scenario("deterioration", 1))
    emu.receive(encode_frame(AARQ), 0, 1.7e9)
    emu.receive(encode_frame(mds_create_result(1, 0)), 0, 1.7e9)
    data = b"".join(emu.receive(encode_frame(poll_request(i & 0xFFFF, i & 0xFFFF)), float(i), 1.7e9 + i)
                    for i in range(1, n + 1))

    def make() -> PhilipsSession:
        s = PhilipsSession()
        s.state = ASSOCIATED
        return s

    return data, make


def _hl7(n: int) -> tuple[bytes, Callable[[], Decoder]]:
    from firmware_bridge.emulators.hl7 import oru_message
    from firmware_bridge.emulators.scenarios import make_scenario
    from firmware_bridge.hl7_mllp import MLLP_END, SB, MllpDecoder

    scn = make_scenario("deterioration", 1)
    data = b"".join(SB + oru_message(scn.at(float(i)), f"C{i}", 1.7e9 + i) + MLLP_END for i in range(n))
    return data, MllpDecoder


def bench_gatt(n: int, repeats: int) -> dict[str, float]:
    """GATT values arrive one per MQTT message: decode ``n`` (uuid, value) pairs."""
    from firmware_bridge.emulators.scenarios import make_scenario
    from firmware_bridge.emulators.wearable import characteristic_values
    from firmware_bridge.gatt import GattDecoder, uuid16

    scn = make_scenario("deterioration", 1)
    values: list[tuple[int, bytes]] = []
    i = 0
    while len(values) < n:
        values += [(uuid16(u), v) for u, v in characteristic_values(scn.at(float(i)), float(i), None)]
        i += 1
    total = sum(len(v) for _, v in values)
    best = float("inf")
    stats = CodecStats()
    for _ in range(repeats):
        d = GattDecoder()
        t0 = time.perf_counter()
        for u, v in values:
            d.decode(u, v, 0.0, 0.0)
        best = min(best, time.perf_counter() - t0)
        stats = d.stats
    return _figures(total, stats, best)


def _figures(nbytes: int, stats: CodecStats, seconds: float) -> dict[str, float]:
    return {
        "mb_per_s": round(nbytes / seconds / 1e6, 2),
        "frames_per_s": round(stats.frames / seconds),
        "samples_per_s": round(stats.samples / seconds),
        "bytes": nbytes,
        "frames": stats.frames,
        "bad_frames": stats.bad_frames,
        "seconds": round(seconds, 4),
    }


def bench_stream(data: bytes, make: Callable[[], Decoder], repeats: int) -> dict[str, float]:
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    best = float("inf")
    stats = CodecStats()
    for _ in range(repeats):
        dec = make()
        feed = dec.feed
        t0 = time.perf_counter()
        for c in chunks:
            feed(c, 0.0, 0.0)
        best = min(best, time.perf_counter() - t0)
        stats = dec.stats
    return _figures(len(data), stats, best)


def run(scale: float = 1.0, repeats: int = 3) -> dict[str, object]:
    sizes = {"masimo": 30000, "nonin_oem3": 20000, "philips_mib": 6000, "hl7_mllp": 3000}
    makers = {"masimo": _masimo, "nonin_oem3": _nonin, "philips_mib": _philips, "hl7_mllp": _hl7}
    codecs: dict[str, dict[str, float]] = {}
    maker: Callable[[int], tuple[bytes, Callable[[], Decoder]]]
    for name, maker in makers.items():
        data, make = maker(max(10, int(sizes[name] * scale)))
        codecs[name] = bench_stream(data, make, repeats)
    codecs["gatt"] = bench_gatt(max(100, int(60000 * scale)), repeats)
    return {
        "benchmark": "codecs",
        "unit_note": "decoded MB/s and frames/s on one core, best of repeats, 4 KiB reads",
        "floor_mb_per_s_serial": FLOOR_MB_S,
        "serial_codecs_meet_floor": all(codecs[c]["mb_per_s"] >= FLOOR_MB_S for c in SERIAL_CODECS),
        "codecs": codecs,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
