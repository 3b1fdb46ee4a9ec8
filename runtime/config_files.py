"""The files a validated config names, checked on this machine (``pulsegate check-config``).

Types and cross-references say a config is well formed; they cannot say that the key files it names
are there. A daemon finds that out only when it starts (``startup_failed``, exit 2), so check-config
also opens every file the daemon would open, resolved the way the daemon resolves it:

- ``*_file`` secrets, ``pseudonym_key`` and ``[*.tls]`` ``cert``/``key``: a path relative to the
  config file's directory, or ``credential:NAME`` (only readable inside the systemd unit, so left for
  the start);
- an MQTT link's ``tls_ca_file``/``tls_cert_file``/``tls_key_file`` and ``trusted_keys``: paths as
  written (a relative one from the daemon's working directory); each trusted key an Ed25519 public
  key in PEM.

``users_file`` is the gateway's own state (``pulsegate user add`` writes it), so a missing one is not
a problem. Nothing read here is printed: a message names the key and what is wrong, never content.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from runtime.configbase import SecretError, read_secret
from wire.model_manifest import ManifestError, load_public_key

Loc = tuple[str | int, ...]

_STATE_FILES = frozenset({"users_file"})
_SECRET_KEYS = frozenset({"pseudonym_key"})
_MIN_BYTES = {"pseudonym_key": 16}


def file_problems(cfg: BaseModel, config_dir: Path) -> list[tuple[Loc, str]]:
    """(key path, message) for each file the config names that this machine cannot read as meant."""
    out: list[tuple[Loc, str]] = []
    _walk(cfg, (), config_dir, out, in_tls=False)
    return out


def _walk(node: object, loc: Loc, base: Path, out: list[tuple[Loc, str]], in_tls: bool) -> None:
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            value = getattr(node, name)
            here = (*loc, name)
            if value is None:
                continue
            if name == "trusted_keys":
                for i, key in enumerate(value):
                    _public_key(Path(key), (*here, i), out)
            elif name in _STATE_FILES:
                continue
            elif isinstance(value, str) and (name.endswith("_file") or name in _SECRET_KEYS
                                             or (in_tls and name in ("cert", "key"))):
                _secret(value, here, None if name.startswith("tls_") else base, out, _MIN_BYTES.get(name, 1))
            else:
                _walk(value, here, base, out, in_tls=name == "tls")
    elif isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            _walk(item, (*loc, i), base, out, in_tls)
    elif isinstance(node, dict):
        for key, item in node.items():
            _walk(item, (*loc, str(key)), base, out, in_tls)


def _secret(ref: str, loc: Loc, base: Path | None, out: list[tuple[Loc, str]], min_bytes: int) -> None:
    if ref.startswith("credential:"):
        return  # $CREDENTIALS_DIRECTORY exists only inside the unit; the daemon checks it at start
    try:
        data = read_secret(ref, base)
    except SecretError as exc:
        out.append((loc, str(exc)))
        return
    if len(data) < min_bytes:
        out.append((loc, f"{ref}: holds {len(data)} bytes, at least {min_bytes} are needed"))


def _public_key(path: Path, loc: Loc, out: list[tuple[Loc, str]]) -> None:
    try:
        load_public_key(path)
    except ManifestError as exc:
        out.append((loc, str(exc)))
