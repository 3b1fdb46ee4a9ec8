"""``pulsegate bench wire``: size and speed of the contract's encodings.

Compares the chosen encoding (MessagePack via msgspec, typed decode) with
JSON (msgspec and the standard library) on a realistic summary message, raw
and zlib-compressed. The figures chose MessagePack (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import json
import random
import time
import zlib
from collections.abc import Callable
from typing import Any

import msgspec

from wire.codec import decode, encode
from wire.messages import VERSION, Summary, SummaryItem

PARAMS = ("heart_rate", "spo2", "resp_rate", "nibp_sys", "nibp_dia", "temperature")


def sample_summary(beds: int = 64, seed: int = 1) -> Summary:
    rng = random.Random(seed)
    items = []
    for b in range(beds):
        patient = f"{rng.getrandbits(128):032x}"
        for p in PARAMS:
            base = rng.uniform(36, 140)
            items.append(SummaryItem(f"bed-{b:03d}", patient, p, 1_764_000_000_000_000_000, 60,
                                     round(base - 3, 1), round(base + 4, 1), round(base, 2), round(base + 1, 1)))
    return Summary(v=VERSION, gw="ward7-gw1", seq=1234, interval_s=60.0, items=items)


def _time(fn: Callable[[], Any], n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def run(beds: int = 64, n: int = 300) -> dict[str, Any]:
    msg = sample_summary(beds)
    as_dict = msgspec.to_builtins(msg)
    mp = encode(msg)
    js = msgspec.json.encode(msg)
    std = json.dumps(as_dict).encode()
    json_dec = msgspec.json.Decoder(Summary)
    out: dict[str, Any] = {"beds": beds, "items": len(msg.items)}
    plain = msgspec.msgpack.encode(msg)
    plain_dec = msgspec.msgpack.Decoder(Summary)
    for name, body, enc, dec in (
        ("contract_msgpack_zlib", mp, lambda: encode(msg), lambda: decode(mp)),
        ("msgpack_msgspec", plain, lambda: msgspec.msgpack.encode(msg), lambda: plain_dec.decode(plain)),
        ("json_msgspec", js, lambda: msgspec.json.encode(msg), lambda: json_dec.decode(js)),
        ("json_stdlib", std, lambda: json.dumps(as_dict).encode(), lambda: json.loads(std)),
    ):
        out[name] = {
            "bytes": len(body),
            "bytes_zlib": len(zlib.compress(body, 6)),
            "encode_us": round(_time(enc, n), 1),
            "decode_us": round(_time(dec, n), 1),
        }
    return out
