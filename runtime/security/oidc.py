"""OpenID Connect: staff log in at the organisation's identity provider (Keycloak, Entra ID, Okta).

Two uses, one verifier:

* bearer JWTs on API calls: the signature is checked against the issuer's
  JWKS (fetched from its discovery document, cached, re-fetched for an unknown
  ``kid`` at most every 30 s), and ``iss``, ``aud``, ``exp`` (and ``iat``,
  ``sub``) must be right; only asymmetric algorithms are accepted, never
  ``none`` or an HMAC one (whose key would be public).
* browser login: authorization code flow with PKCE (S256), ``state`` bound to
  a cookie, ``nonce`` checked in the ID token; the claims become a session.

Roles, wards and sites come from claims named in the config (dotted paths:
``realm_access.roles`` for Keycloak), mapped through ``role_map``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

from .config import OidcSection
from .policy import is_loopback
from .roles import Principal, Role
from .users import SCOPE

PENDING_S = 600.0
UNKNOWN_KID_REFETCH_S = 30.0
_ROLE_NAMES = frozenset(r.value for r in Role)


class OidcError(ValueError):
    pass


@dataclass
class _Pending:
    nonce: str
    verifier: str
    next_path: str
    created: float


def _dig(claims: dict[str, Any], path: str) -> Any:
    cur: Any = claims
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def pkce_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class OidcProvider:
    def __init__(self, cfg: OidcSection, client_secret: str | None = None, *, timeout_s: float = 5.0) -> None:
        issuer_host = urllib.parse.urlsplit(cfg.issuer).hostname or ""
        if cfg.issuer.startswith("http://") and not is_loopback(issuer_host):
            raise OidcError(f"OIDC issuer {cfg.issuer}: plain http only on loopback (tests); use https")
        self.cfg = cfg
        self.issuer = cfg.issuer.rstrip("/")
        self.client_secret = client_secret
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.meta: dict[str, Any] = {}
        self._jwks: jwt.PyJWKSet | None = None
        self._jwks_at = -1e9
        self._unknown_kid_at = -1e9
        self._pending: dict[str, _Pending] = {}
        self._http: aiohttp.ClientSession | None = None
        self.verified = 0
        self.rejected = 0

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self.timeout)
        return self._http

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._client().get(url) as r:
                if r.status != 200:
                    raise OidcError(f"OIDC: {url} answered {r.status}")
                doc = await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise OidcError(f"OIDC: cannot fetch {url}: {exc!r}") from None
        if not isinstance(doc, dict):
            raise OidcError(f"OIDC: {url} is not a JSON object")
        return doc

    async def discover(self) -> dict[str, Any]:
        if not self.meta:
            doc = await self._get_json(self.issuer + "/.well-known/openid-configuration")
            if str(doc.get("issuer", "")).rstrip("/") != self.issuer:
                raise OidcError(f"OIDC: discovery names issuer {doc.get('issuer')!r}, expected {self.issuer!r}")
            for key in ("jwks_uri", "authorization_endpoint", "token_endpoint"):
                if not isinstance(doc.get(key), str):
                    raise OidcError(f"OIDC: discovery has no {key}")
            self.meta = doc
        return self.meta

    async def _keys(self, kid: str | None) -> jwt.PyJWKSet:
        now = time.monotonic()
        stale = now - self._jwks_at > self.cfg.jwks_refresh_s
        unknown = self._jwks is not None and kid is not None and kid not in {k.key_id for k in self._jwks.keys}
        if self._jwks is None or stale or (unknown and now - self._unknown_kid_at > UNKNOWN_KID_REFETCH_S):
            if unknown:
                self._unknown_kid_at = now
            meta = await self.discover()
            try:
                self._jwks = jwt.PyJWKSet.from_dict(await self._get_json(str(meta["jwks_uri"])))
            except jwt.PyJWTError as exc:
                raise OidcError(f"OIDC: the issuer's JWKS does not load: {exc}") from None
            self._jwks_at = now
        return self._jwks

    async def verify(self, token: str, audience: str | None = None, nonce: str | None = None) -> dict[str, Any]:
        """The claims of a valid token from this issuer; OidcError saying why otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            self.rejected += 1
            raise OidcError("not a JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.cfg.algorithms:
            self.rejected += 1
            raise OidcError(f"algorithm {alg!r} is not accepted")
        keys = await self._keys(kid)
        matching = [k for k in keys.keys if kid is None or k.key_id == kid]
        if not matching:
            self.rejected += 1
            raise OidcError("signed by a key the issuer does not publish")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, matching[0].key, algorithms=[alg], audience=audience or self.cfg.audience or self.cfg.client_id,
                issuer=self.issuer, leeway=self.cfg.leeway_s,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.PyJWTError as exc:
            self.rejected += 1
            raise OidcError(f"token refused: {exc}") from None
        if nonce is not None and claims.get("nonce") != nonce:
            self.rejected += 1
            raise OidcError("token refused: nonce does not match")
        self.verified += 1
        return claims

    def principal(self, claims: dict[str, Any], method: str = "oidc") -> Principal:
        roles: set[Role] = set()
        for r in _strings(_dig(claims, self.cfg.roles_claim)):
            mapped = self.cfg.role_map.get(r)
            if mapped is None and r in _ROLE_NAMES:
                mapped = Role(r)
            if mapped is not None:
                roles.add(mapped)
        sites = frozenset(s for s in _strings(_dig(claims, self.cfg.sites_claim)) if SCOPE.fullmatch(s))
        wards = frozenset(s for s in _strings(_dig(claims, self.cfg.wards_claim)) if SCOPE.fullmatch(s))
        name = claims.get(self.cfg.name_claim)
        name = name if isinstance(name, str) and 0 < len(name) <= 128 else str(claims["sub"])[:128]
        return Principal(name, frozenset(roles), wards, sites, method)

    async def verify_bearer(self, token: str) -> Principal:
        return self.principal(await self.verify(token), "oidc-token")

    # -- authorization code + PKCE -------------------------------------------------------------------------
    async def begin(self, redirect_url: str, next_path: str) -> tuple[str, str]:
        """(the URL to send the browser to, the state to bind in a cookie)."""
        meta = await self.discover()
        now = time.monotonic()
        for k in [k for k, p in self._pending.items() if now - p.created > PENDING_S]:
            del self._pending[k]
        if len(self._pending) > 10_000:
            raise OidcError("too many logins in progress")
        state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        self._pending[state] = _Pending(nonce, verifier, next_path, now)
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": self.cfg.client_id, "redirect_uri": redirect_url,
            "scope": " ".join(self.cfg.scopes), "state": state, "nonce": nonce,
            "code_challenge": pkce_challenge(verifier), "code_challenge_method": "S256"})
        return f"{meta['authorization_endpoint']}?{query}", state

    async def finish(self, state: str, code: str, redirect_url: str) -> tuple[Principal, str]:
        """Exchange the code; (the principal from the verified ID token, the page to go back to)."""
        pending = self._pending.pop(state, None)
        if pending is None or time.monotonic() - pending.created > PENDING_S:
            raise OidcError("unknown or expired login (start again)")
        meta = await self.discover()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_url,
                "client_id": self.cfg.client_id, "code_verifier": pending.verifier}
        if self.client_secret is not None:
            form["client_secret"] = self.client_secret
        try:
            async with self._client().post(str(meta["token_endpoint"]), data=form) as r:
                doc = await r.json(content_type=None)
                if r.status != 200 or not isinstance(doc, dict):
                    raise OidcError(f"token endpoint answered {r.status}")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise OidcError(f"token endpoint unreachable: {exc!r}") from None
        id_token = doc.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("token endpoint sent no id_token")
        claims = await self.verify(id_token, audience=self.cfg.client_id, nonce=pending.nonce)
        return self.principal(claims), pending.next_path
