"""Staged rollout: the cloud's signed decisions and the gateway's shadow reports (contract, issue 12).

Downlink ``pg/v1/{site}/{gateway}/down/model_cmd`` (QoS 1, not retained) carries a
:class:`RolloutCommand`: ``promote`` (run the candidate in shadow as the active model from now on) or
``rollback`` (drop it and never take that version again). It is signed with the same Ed25519 key as the
models, over the command's MessagePack encoding without its signature, so a client that can publish on
the broker but does not hold the signing key can neither promote nor roll back anything. A command names
its rollout; the gateway only acts on the rollout whose offer it shadows (a stale command is ignored).

Uplink: the gateway's shadow figures go on its ``status`` stream as :class:`wire.messages.ShadowReport`.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MAX_COMMAND = 4096


class RolloutError(ValueError):
    pass


class RolloutCommand(msgspec.Struct, tag="rlc", tag_field="k", forbid_unknown_fields=True):
    v: int
    rollout: str
    model: str
    version: str
    action: Literal["promote", "rollback"]
    t: int  # ns, when the cloud decided
    reason: str = ""  # the decision's reason (the cloud's audit words; no patient data)
    signature: bytes = b""


_decoder = msgspec.msgpack.Decoder(RolloutCommand)


def _body(c: RolloutCommand) -> bytes:
    return msgspec.msgpack.encode(msgspec.structs.replace(c, signature=b""))


def sign_command(c: RolloutCommand, key: Ed25519PrivateKey) -> bytes:
    """The command's payload, signed."""
    return msgspec.msgpack.encode(msgspec.structs.replace(c, signature=key.sign(_body(c))))


def verify_command(payload: bytes, keys: list[Ed25519PublicKey]) -> RolloutCommand:
    if len(payload) > MAX_COMMAND:
        raise RolloutError(f"rollout command of {len(payload)} bytes > {MAX_COMMAND}")
    try:
        c = _decoder.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise RolloutError(f"malformed rollout command: {str(exc)[:200]}") from None
    if c.v != 1:
        raise RolloutError(f"unsupported rollout command version {c.v}")
    body = _body(c)
    for k in keys:
        try:
            k.verify(c.signature, body)
            return c
        except InvalidSignature:
            continue
    raise RolloutError("rollout command signature does not verify with any trusted key")
