"""Keyed pseudonyms for patient references, made on the gateway.

``HMAC-SHA256(key, "patient:" + ref)`` truncated to 16 bytes (32 hex chars):
stable per patient for trends in the cloud, not reversible without the key,
and the key never leaves the gateway (it is read from a file or a systemd
credential). Two gateways that should link the same patient share the key;
gateways that should not, use different keys.
"""

from __future__ import annotations

import hashlib
import hmac

MIN_KEY_BYTES = 16


class Pseudonymizer:
    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"pseudonymisation key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self._cache: dict[str, str] = {}

    def pseudonym(self, ref: str) -> str:
        """Pseudonym of a patient reference; "" stays "" (no patient admitted)."""
        if not ref:
            return ""
        p = self._cache.get(ref)
        if p is None:
            p = hmac.new(self._key, b"patient:" + ref.encode(), hashlib.sha256).hexdigest()[:32]
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[ref] = p
        return p
