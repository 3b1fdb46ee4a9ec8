"""Base for config sections: frozen, typed, unknown keys are errors.

Every daemon's TOML file is validated into a tree of ``Section`` models at
start (``pulsegate check-config FILE`` does the same without starting).
Secrets never sit in the TOML: a section names a file (``*_file``) or a
systemd credential (``credential:NAME`` -> $CREDENTIALS_DIRECTORY/NAME).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class SecretError(ValueError):
    pass


def secret_path(ref: str, base: Path | None = None) -> Path:
    """The file a secret reference names: a path (relative to ``base``) or ``credential:NAME``
    ($CREDENTIALS_DIRECTORY/NAME, systemd LoadCredential=)."""
    if ref.startswith("credential:"):
        cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        if not cred_dir:
            raise SecretError(f"{ref}: $CREDENTIALS_DIRECTORY is not set (LoadCredential= in the unit)")
        return Path(cred_dir) / ref.removeprefix("credential:")
    path = Path(ref)
    return base / path if base is not None and not path.is_absolute() else path


def read_secret(ref: str, base: Path | None = None) -> bytes:
    """Read a secret named by a path or by ``credential:NAME`` (systemd LoadCredential=)."""
    path = secret_path(ref, base)
    try:
        data = path.read_bytes().strip()
    except OSError as exc:
        raise SecretError(f"cannot read secret {ref}: {exc.strerror}") from None
    if not data:
        raise SecretError(f"secret {ref} is empty")
    return data


def read_optional_secret(ref: str | None, base: Path | None = None) -> str | None:
    """A text secret (password) named by ``ref``, or None when the config names none."""
    return read_secret(ref, base).decode() if ref else None
