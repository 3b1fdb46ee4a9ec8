"""OIDC against a real local issuer (tests/oidc_issuer.py: discovery, JWKS, RS256 tokens, code + PKCE):
bearer tokens verified (iss, aud, exp, signature), other issuers and bad signatures refused, the browser
login flow makes a session with the roles and sites from the claims."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from runtime.security.config import AuthSection, OidcSection
from runtime.security.oidc import OidcError, OidcProvider
from runtime.security.roles import Role
from tests.oidc_issuer import OidcIssuer
from tests.security_fixtures import serve


def hs256(header: dict[str, object], claims: dict[str, object], key: bytes) -> str:
    def b64(d: bytes) -> str:
        return base64.urlsafe_b64encode(d).rstrip(b"=").decode()

    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    return signing + "." + b64(hmac.new(key, signing.encode(), hashlib.sha256).digest())


def auth_for(iss: OidcIssuer, tmp_path: Path) -> AuthSection:
    return AuthSection(users_file=tmp_path / "users.json", metrics_from_loopback=False,
                       oidc=OidcSection(issuer=iss.url, client_id=iss.client_id,
                                        role_map={"ward-staff": Role.NURSE}))


async def test_bearer_tokens_from_the_issuer_pass_others_are_refused(tmp_path: Path) -> None:
    async with OidcIssuer() as iss, serve(tmp_path, auth_for(iss, tmp_path)) as srv, srv.client() as s:
        async def status(token: str) -> int:
            r = await s.get(srv.url + "api/state", headers={"Authorization": f"Bearer {token}"})
            return r.status

        good = iss.token(sub="u1", preferred_username="vera", roles=["viewer"], sites=["site-a"])
        r = await s.get(srv.url + "api/state", headers={"Authorization": f"Bearer {good}"})
        assert r.status == 200 and (await r.json())["user"] == "vera"
        assert await status(iss.token(roles=["clinician"])) == 403  # valid, but the wrong role
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assert await status(iss.token(key=other_key, roles=["viewer"])) == 401  # bad signature, same kid
        assert await status(iss.token(issuer="https://evil.example", roles=["viewer"])) == 401
        assert await status(iss.token(lifetime_s=-120, roles=["viewer"])) == 401  # expired
        assert await status(iss.token(aud="another-app", roles=["viewer"])) == 401
        unsigned = jwt.encode({"iss": iss.url, "aud": iss.client_id, "sub": "x", "roles": ["admin"]}, key=None,
                              algorithm="none")
        assert await status(unsigned) == 401
        pub = iss.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        forged = hs256({"alg": "HS256", "typ": "JWT", "kid": iss.kid},  # the classic: HMAC keyed with the public key
                       {"iss": iss.url, "aud": iss.client_id, "sub": "x", "exp": 2**31, "iat": 1, "roles": ["admin"]},
                       pub)
        assert await status(forged) == 401
        assert await status(iss.token(roles=["ward-staff"])) == 200  # mapped to nurse by role_map
        assert len(srv.sec.guard.audit.find("token", "failed")) == 6
        for _ in range(14):  # 20 bad tokens from one address: the address is locked out for a while
            assert await status("pgt_0000000000000000_" + "A" * 43) == 401
        assert await status(good) == 401 and srv.sec.guard.audit.find("lockout", "locked")


async def test_code_flow_with_pkce_makes_a_session_with_claims(tmp_path: Path) -> None:
    async with OidcIssuer() as iss, serve(tmp_path, auth_for(iss, tmp_path)) as srv, srv.client() as s:
        iss.user = {"sub": "u-77", "preferred_username": "dr.house", "roles": ["viewer"], "sites": ["site-b"]}
        r = await s.get(srv.url + "auth/oidc/login?next=/api/state", allow_redirects=False)
        assert r.status == 302
        authorize = r.headers["Location"]
        q = parse_qs(urlsplit(authorize).query)
        assert authorize.startswith(iss.url + "/authorize") and q["code_challenge_method"] == ["S256"]
        assert "code_verifier" not in q and len(q["code_challenge"][0]) == 43
        r = await s.get(authorize, allow_redirects=False)  # the issuer approves and sends the browser back
        callback = r.headers["Location"]
        assert callback.startswith(srv.url + "auth/oidc/callback?")
        r = await s.get(callback, allow_redirects=False)
        assert r.status == 200 and 'url=/api/state' in await r.text()
        assert iss.token_requests == 1
        me = await (await s.get(srv.url + "auth/me")).json()
        assert me["user"] == "dr.house" and me["roles"] == ["viewer"] and me["sites"] == ["site-b"]
        assert me["method"] == "oidc" and me["csrf"]
        assert (await s.get(srv.url + "api/state")).status == 200
        r = await s.get(callback, allow_redirects=False)  # a code (and state) is good once
        assert r.status in (400, 401)
        assert srv.sec.guard.audit.find("login", "ok")[0].detail["method"] == "oidc"


async def test_callback_without_the_browsers_state_cookie_is_refused(tmp_path: Path) -> None:
    async with OidcIssuer() as iss, serve(tmp_path, auth_for(iss, tmp_path)) as srv:
        async with srv.client() as victim:
            r = await victim.get(srv.url + "auth/oidc/login", allow_redirects=False)
            r = await victim.get(r.headers["Location"], allow_redirects=False)
            callback = r.headers["Location"]
        async with srv.client() as attacker:  # login CSRF: someone else's callback URL
            r = await attacker.get(callback, allow_redirects=False)
            assert r.status == 400
            assert (await attacker.get(srv.url + "api/state")).status == 401


async def test_discovery_naming_another_issuer_is_refused(tmp_path: Path) -> None:
    async with OidcIssuer() as iss:
        lying = OidcProvider(OidcSection(issuer=iss.url + "/realms/x", client_id="pulsegate"))
        try:
            with pytest.raises(OidcError):
                await lying.discover()
        finally:
            await lying.close()
    with pytest.raises(OidcError, match="https"):
        OidcProvider(OidcSection(issuer="http://sso.example", client_id="pulsegate"))


async def test_gateway_with_oidc_unreachable_falls_back_to_local_accounts(tmp_path: Path) -> None:
    """A ward gateway whose hospital identity provider is down: the local accounts still log in."""
    from bench.localservices import free_port

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    auth = AuthSection(users_file=tmp_path / "users.json", oidc=OidcSection(issuer=dead, client_id="pulsegate"))
    async with serve(tmp_path, auth) as srv, srv.client() as s:
        r = await s.get(srv.url + "auth/oidc/login", allow_redirects=False)
        assert r.status == 503
        methods = await (await s.get(srv.url + "auth/methods")).json()
        assert methods == {"local": True, "oidc": True}
        await srv.login(s, "nina")
        assert (await s.get(srv.url + "api/state")).status == 200
        assert srv.sec.guard.audit.find("login", "failed")[0].detail["method"] == "oidc"
