"""Encoding and strict decoding of contract messages.

Untrusted input (anything arriving from the network) goes through
:func:`decode`: oversize payloads, bad MessagePack, unknown tags, unknown
fields, wrong types and wrong versions raise :class:`WireError` with a short
reason that the caller counts. Nothing else escapes.
"""

from __future__ import annotations

import zlib
from typing import TypeVar

import msgspec

from wire.messages import SUPPORTED, Message, Receipt

MAX_PAYLOAD = 256 * 1024  # bytes on the wire
MAX_DECOMPRESSED = 4 * 1024 * 1024  # bytes after inflating; bounds a zip bomb
COMPRESS_ABOVE = 1024  # bytes; smaller messages (alarms, status) go uncompressed
ZLIB_MARK = 0xC1  # "never used" in MessagePack, so a marked payload cannot be confused with a plain one

T = TypeVar("T")
_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)  # type: ignore[arg-type]
_receipt_decoder = msgspec.msgpack.Decoder(Receipt)
MAX_RECEIPT = 64 * 1024  # bytes; a receipt names ranges, never data


class WireError(ValueError):
    """A payload that is not a valid contract message. ``reason`` is a metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode(msg: Message) -> bytes:
    """MessagePack; payloads over COMPRESS_ABOVE bytes are zlib-compressed behind ZLIB_MARK."""
    body = _encoder.encode(msg)
    if len(body) > COMPRESS_ABOVE:
        return bytes((ZLIB_MARK,)) + zlib.compress(body, 6)
    return body


def _inflate(payload: bytes) -> bytes:
    d = zlib.decompressobj()
    try:
        body = d.decompress(payload[1:], MAX_DECOMPRESSED)
    except zlib.error as exc:
        raise WireError("malformed", f"bad zlib stream: {exc}") from None
    if d.unconsumed_tail:
        raise WireError("oversize", f"inflates past {MAX_DECOMPRESSED} bytes")
    if not d.eof:
        raise WireError("malformed", "truncated zlib stream")
    return body


def _strict(decoder: msgspec.msgpack.Decoder[T], payload: bytes) -> T:
    try:
        return decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise WireError("schema", str(exc)[:300]) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise WireError("malformed", str(exc)[:300]) from None


def decode(payload: bytes) -> Message:
    if len(payload) > MAX_PAYLOAD:
        raise WireError("oversize", f"{len(payload)} bytes > {MAX_PAYLOAD}")
    if payload[:1] == b"\xc1":
        payload = _inflate(payload)
    msg = _strict(_decoder, payload)
    if msg.v not in SUPPORTED:
        raise WireError("version", f"unsupported contract version {msg.v}")
    return msg


def encode_receipt(receipt: Receipt) -> bytes:
    return _encoder.encode(receipt)


def decode_receipt(payload: bytes) -> Receipt:
    """Strict decoding of a receipt (the gateway's only input from the ingest); WireError otherwise."""
    if len(payload) > MAX_RECEIPT:
        raise WireError("oversize", f"{len(payload)} bytes > {MAX_RECEIPT}")
    rct = _strict(_receipt_decoder, payload)
    if rct.v not in SUPPORTED or rct.v < 2:
        raise WireError("version", f"unsupported receipt version {rct.v}")
    return rct
