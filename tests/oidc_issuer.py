"""A small but real OpenID Connect issuer for the tests: discovery, a JWKS with an RSA key, signed tokens,
and the authorization code flow with PKCE (S256), approving as ``issuer.user`` without a form.

    async with OidcIssuer() as iss:   # on a free loopback port
        token = iss.token(sub="u1", aud="pulsegate", roles=["viewer"], sites=["site-a"])
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.localservices import free_port


class OidcIssuer:
    def __init__(self, client_id: str = "pulsegate") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client_id = client_id
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(4)
        self.user: dict[str, Any] = {"sub": "oidc-user-1", "preferred_username": "dr.who", "roles": ["viewer"],
                                     "sites": ["site-a"]}
        self.codes: dict[str, dict[str, Any]] = {}
        self.token_requests = 0
        self._runner: web.AppRunner | None = None

    # -- tokens ------------------------------------------------------------------------------------------
    def token(self, key: rsa.RSAPrivateKey | None = None, kid: str | None = None, issuer: str | None = None,
              lifetime_s: float = 300.0, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": issuer or self.url, "aud": self.client_id, "iat": now, "exp": now + int(lifetime_s),
                "sub": "svc-1", **claims}
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    # -- HTTP ---------------------------------------------------------------------------------------------
    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response({
            "issuer": self.url, "jwks_uri": self.url + "/jwks", "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token", "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"], "id_token_signing_alg_values_supported": ["RS256"]})

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self.jwks())

    async def _authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256" or q.get(
                "client_id") != self.client_id:
            return web.json_response({"error": "invalid_request"}, status=400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"challenge": q["code_challenge"], "redirect_uri": q["redirect_uri"],
                            "nonce": q.get("nonce"), "user": dict(self.user)}
        raise web.HTTPFound(q["redirect_uri"] + "?" + urlencode({"code": code, "state": q.get("state", "")}))

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        grant = self.codes.pop(str(form.get("code", "")), None)
        if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
            return web.json_response({"error": "invalid_grant"}, status=400)
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != grant["challenge"]:
            return web.json_response({"error": "invalid_grant", "error_description": "PKCE"}, status=400)
        id_token = self.token(nonce=grant["nonce"], **grant["user"])
        return web.json_response({"access_token": self.token(**grant["user"]), "id_token": id_token,
                                  "token_type": "Bearer", "expires_in": 300})

    async def __aenter__(self) -> OidcIssuer:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
