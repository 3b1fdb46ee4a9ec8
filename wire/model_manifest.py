"""Model manifests and their Ed25519 signatures.

A model ships as ``models/<name>/<version>/`` holding ``model.tflite``,
``manifest.json`` (this schema), ``manifest.sig`` (raw 64-byte Ed25519
signature over the exact bytes of manifest.json) and ``MODEL_CARD.md``.
The manifest pins the model file by sha256, so signing the manifest signs the
model. Gateways hold only public keys; the cloud's model registry holds the
private key (``pulsegate model keygen`` / ``pulsegate model sign``).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)


class TensorSpec(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    shape: list[int]  # -1 for a dynamic (batch) dimension
    dtype: str  # float32 | int8 | uint8
    scale: float = 0.0  # quantisation, 0 when not quantised
    zero_point: int = 0


class Manifest(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    version: str  # dotted integers, compared numerically
    sha256: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    metrics: dict[str, float | int | str | None] = {}
    features: dict[str, Any] = {}  # the input feature spec (vitals-anomaly: clinical/features.py FeatureSpec)
    training_data: str = ""
    created: str = ""
    thresholds: dict[str, float] = {}  # operating points chosen at training (endoscopy-seg: threshold, presence)
    notes: str = ""

    def version_tuple(self) -> tuple[int, ...]:
        return version_tuple(self.version)


class ManifestError(ValueError):
    pass


_VERSION = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9}){0,5}")


def version_tuple(version: str) -> tuple[int, ...]:
    if not _VERSION.fullmatch(version):
        raise ManifestError(f"version {version[:40]!r} is not dotted integers")
    return tuple(int(p) for p in version.split("."))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def encode_manifest(m: Manifest) -> bytes:
    return msgspec.json.format(msgspec.json.encode(m), indent=2) + b"\n"


def _read_key(path: Path, kind: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read {kind} key {path}: {exc.strerror or exc}") from None


def _pem_reason(exc: Exception) -> str:
    return str(exc).split(". See ")[0]  # cryptography appends a FAQ link


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 signing key in a PEM file; a missing, unreadable or non-PEM file is a ManifestError."""
    data = _read_key(path, "private")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ManifestError(f"{path} is not a PEM private key without a password ({_pem_reason(exc)})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ManifestError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The Ed25519 public key in a PEM file; a missing, unreadable or non-PEM file is a ManifestError."""
    data = _read_key(path, "public")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ManifestError(f"{path} is not a PEM public key ({_pem_reason(exc)})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ManifestError(f"{path} is not an Ed25519 public key")
    return key


def generate_keypair(private_path: Path, public_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    private_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private_path.chmod(0o600)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def sign_model_dir(model_dir: Path, key: Ed25519PrivateKey) -> None:
    """Re-hash model.tflite into manifest.json and write manifest.sig."""
    manifest_path = model_dir / "manifest.json"
    m = msgspec.json.decode(manifest_path.read_bytes(), type=Manifest)
    m.sha256 = sha256_file(model_dir / "model.tflite")
    body = encode_manifest(m)
    manifest_path.write_bytes(body)
    (model_dir / "manifest.sig").write_bytes(key.sign(body))


def verify_model_dir(model_dir: Path, keys: list[Ed25519PublicKey]) -> Manifest:
    """Verify signature and hash; return the manifest or raise ManifestError."""
    try:
        body = (model_dir / "manifest.json").read_bytes()
        sig = (model_dir / "manifest.sig").read_bytes()
    except FileNotFoundError as exc:
        raise ManifestError(f"{model_dir}: missing {Path(exc.filename).name}") from None
    if not any(_verifies(k, sig, body) for k in keys):
        raise ManifestError(f"{model_dir}: manifest signature does not verify with any trusted key")
    try:
        m = msgspec.json.decode(body, type=Manifest)
    except msgspec.DecodeError as exc:
        raise ManifestError(f"{model_dir}: manifest invalid: {exc}") from None
    model_file = model_dir / "model.tflite"
    if not model_file.exists():
        raise ManifestError(f"{model_dir}: missing model.tflite")
    digest = sha256_file(model_file)
    if digest != m.sha256:
        raise ManifestError(f"{model_dir}: model.tflite sha256 {digest[:12]} != manifest {m.sha256[:12]}")
    version_tuple(m.version)
    return m


def _verifies(key: Ed25519PublicKey, sig: bytes, body: bytes) -> bool:
    try:
        key.verify(sig, body)
    except InvalidSignature:
        return False
    return True


def model_versions(models_dir: Path, name: str) -> list[Path]:
    """Version directories under models_dir/name, newest first (non-version names ignored)."""
    root = models_dir / name
    if not root.is_dir():
        return []
    dirs = []
    for d in root.iterdir():
        try:
            dirs.append((version_tuple(d.name), d))
        except ManifestError:
            continue
    return [d for _, d in sorted(dirs, reverse=True) if d.is_dir()]


def resolve_model_dir(models_dir: Path, name: str, version: str | None = None) -> Path:
    """The requested version, or the newest one, under models_dir/name."""
    if version is not None:
        d = models_dir / name / version
        if not d.is_dir():
            raise ManifestError(f"{d}: no such model version")
        return d
    versions = model_versions(models_dir, name)
    if not versions:
        raise ManifestError(f"no {name} model under {models_dir}")
    return versions[0]


def newest_model_dir(models_dir: Path, name: str) -> Path | None:
    """The newest version directory of ``name`` under models_dir, or None."""
    return next((d for d in model_versions(models_dir, name) if (d / "model.tflite").exists()), None)
