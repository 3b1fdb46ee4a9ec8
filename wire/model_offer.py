"""Cloud -> gateway model distribution: one retained message per gateway.

``pg/v1/{site}/{gateway}/models`` carries a :class:`ModelOffer`: the signed
manifest's exact bytes, its Ed25519 signature and the model file. The gateway
trusts nothing in it until :func:`wire.model_manifest.verify_model_dir` has
checked the signature against its own trusted keys and the model's sha256
against the signed manifest.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

MAX_OFFER = 16 * 1024 * 1024  # bytes; vitals-anomaly is ~80 kB, endoscopy-seg a few MB


class ModelOffer(msgspec.Struct, tag="mdl", tag_field="k", forbid_unknown_fields=True, omit_defaults=True):
    v: int
    name: str
    version: str
    manifest: bytes
    signature: bytes
    model: bytes
    rollout: str = ""  # a staged rollout (cloud/rollout.py): shadow, wait for its signed command (omitted if "")


class OfferError(ValueError):
    pass


_decoder = msgspec.msgpack.Decoder(ModelOffer)


def offer_from_dir(model_dir: Path) -> ModelOffer:
    manifest = (model_dir / "manifest.json").read_bytes()
    info = msgspec.json.decode(manifest)
    return ModelOffer(
        v=1, name=str(info["name"]), version=str(info["version"]), manifest=manifest,
        signature=(model_dir / "manifest.sig").read_bytes(), model=(model_dir / "model.tflite").read_bytes(),
    )


def encode_offer(offer: ModelOffer) -> bytes:
    return msgspec.msgpack.encode(offer)


def decode_offer(payload: bytes) -> ModelOffer:
    if len(payload) > MAX_OFFER:
        raise OfferError(f"model offer of {len(payload)} bytes exceeds {MAX_OFFER}")
    try:
        offer = _decoder.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise OfferError(f"malformed model offer: {str(exc)[:200]}") from None
    if offer.v != 1:
        raise OfferError(f"unsupported model offer version {offer.v}")
    return offer


def write_offer(offer: ModelOffer, model_dir: Path) -> None:
    """Write the three files of an (as yet unverified) offer into ``model_dir``."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "manifest.json").write_bytes(offer.manifest)
    (model_dir / "manifest.sig").write_bytes(offer.signature)
    (model_dir / "model.tflite").write_bytes(offer.model)
