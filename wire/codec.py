"""Encoding and strict decoding of contract messages.

Untrusted input (anything arriving from the network) goes through
:func:`decode`: oversize payloads, bad MessagePack, unknown tags, unknown
fields, wrong types and wrong versions raise :class:`WireError` with a short
reason that the caller counts. Nothing else escapes.
"""

from __future__ import annotations

import msgspec

from wire.messages import VERSION, Message

MAX_PAYLOAD = 256 * 1024  # bytes; a summary of 500 beds x 8 parameters is ~40 kB

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)  # type: ignore[arg-type]


class WireError(ValueError):
    """A payload that is not a valid v1 message. ``reason`` is a metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode(msg: Message) -> bytes:
    return _encoder.encode(msg)


def decode(payload: bytes) -> Message:
    if len(payload) > MAX_PAYLOAD:
        raise WireError("oversize", f"{len(payload)} bytes > {MAX_PAYLOAD}")
    try:
        msg = _decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise WireError("schema", str(exc)[:300]) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise WireError("malformed", str(exc)[:300]) from None
    if msg.v != VERSION:
        raise WireError("version", f"unsupported contract version {msg.v}")
    return msg
