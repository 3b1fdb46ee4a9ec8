"""The TOML sections every listener shares: [auth], [tls] and [auth.oidc].

    [http.tls]                    # or [api.tls] in the cloud
    cert = "credential:https.crt" # a path or a systemd credential
    key = "credential:https.key"

    [auth]
    users_file = "/var/lib/pulsegate/users.json"  # local accounts (pulsegate user add ...)
    allowed_hosts = ["ward7-gw.hospital.example"] # Host names served (DNS rebinding); loopback always
    session_idle_s = 1800
    insecure_no_auth = false                      # true: no login at all (logged loudly at every start)

    [auth.oidc]                                   # the cloud; optional on a gateway
    issuer = "https://sso.hospital.example/realms/staff"
    client_id = "pulsegate"
    redirect_url = "https://fleet.example/auth/oidc/callback"
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from runtime.configbase import Section

from .roles import Role


class TlsSection(Section):
    cert: str = Field(description="certificate chain (PEM): a path or credential:NAME")
    key: str = Field(description="private key (PEM): a path or credential:NAME")


class OidcSection(Section):
    issuer: str = Field(pattern=r"^https?://[^\s]+$")
    client_id: str = Field(min_length=1, max_length=256)
    client_secret: str | None = Field(None, description="a path or credential:NAME; none for a public client")
    audience: str | None = None  # what API bearer tokens must carry in aud; default client_id
    redirect_url: str | None = Field(None, pattern=r"^https?://[^\s]+/auth/oidc/callback$")
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    roles_claim: str = "roles"  # dotted path: "realm_access.roles" for Keycloak
    sites_claim: str = "sites"
    wards_claim: str = "wards"
    name_claim: str = "preferred_username"
    role_map: dict[str, Role] = Field(default_factory=dict)  # IdP role -> PulseGate role (names map to themselves)
    algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256")
    leeway_s: float = Field(30.0, ge=0.0, le=300.0)
    jwks_refresh_s: float = Field(300.0, ge=10.0, le=86400.0)

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in v if a.lower() == "none" or a.startswith("HS")]
        if bad or not v:
            raise ValueError(f"only asymmetric signature algorithms are accepted, not {bad}")
        return v


class AuthSection(Section):
    users_file: Path | None = None
    insecure_no_auth: bool = False
    ward: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")  # the gateway's ward (default: site)
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()  # extra origins for state changes (a reverse proxy's)
    session_idle_s: float = Field(1800.0, ge=30.0, le=86400.0)
    session_absolute_s: float = Field(12 * 3600.0, ge=60.0, le=7 * 86400.0)
    lockout_failures: int = Field(5, ge=1, le=100)
    address_failures: int = Field(20, ge=1, le=10_000)
    lockout_s: float = Field(300.0, ge=1.0, le=86400.0)
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_json_depth: int = Field(32, ge=2, le=256)
    ws_max_frame_bytes: int = Field(4096, ge=256, le=1024 * 1024)
    ws_per_client: int = Field(8, ge=1, le=1000)
    requests_per_client: int = Field(32, ge=1, le=10_000)  # at once, per client address
    changes_per_minute: int = Field(120, ge=1, le=100_000)  # state changes (POST...) per client address
    metrics_from_loopback: bool = True  # /metrics without a token from 127.0.0.1/::1 (Prometheus on the box)
    oidc: OidcSection | None = None

    @model_validator(mode="after")
    def _checks(self) -> AuthSection:
        if self.session_idle_s > self.session_absolute_s:
            raise ValueError("session_idle_s is longer than session_absolute_s")
        for h in self.allowed_hosts:
            if not h or "/" in h or " " in h:
                raise ValueError(f"allowed_hosts: {h!r} is not a host name")
        return self

    @property
    def enabled(self) -> bool:
        return not self.insecure_no_auth and (self.users_file is not None or self.oidc is not None)
