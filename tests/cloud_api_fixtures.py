"""The cloud fleet API behind its guard, as the daemon serves it, for the API and dashboard tests.

Staff log in through a real local OIDC issuer (tests/oidc_issuer.py); a service account has an API
token with viewer rights on every site.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from bench.localservices import free_port
from cloud.api import API_RULES, FleetApi
from cloud.influx import InfluxWriter
from runtime.security.config import AuthSection, OidcSection
from runtime.security.listener import secure_listener
from runtime.security.users import UserStore
from tests.oidc_issuer import OidcIssuer
from tests.security_fixtures import FAST


@dataclass
class Api:
    url: str
    issuer: OidcIssuer
    token: str  # an API token of a service account with viewer rights on every site

    def bearer(self, **claims: object) -> dict[str, str]:
        claims = {"roles": ["viewer"], "sites": ["stmarys", "ambulance"], **claims}
        return {"Authorization": "Bearer " + self.issuer.token(**claims)}

    def __str__(self) -> str:
        return self.url


@asynccontextmanager
async def guarded_fleet_api(writer: InfluxWriter, tmp_path: Path) -> AsyncIterator[Api]:
    users = UserStore(tmp_path / "users.json", FAST)
    users.add("grafana", "unused-password", ["viewer"], sites=["*"])
    token = users.new_token("grafana")
    users.save()
    async with OidcIssuer() as issuer:
        issuer.user = {"sub": "staff-1", "preferred_username": "fleet.viewer", "roles": ["viewer"],
                       "sites": ["stmarys", "ambulance"]}
        auth = AuthSection(oidc=OidcSection(issuer=issuer.url, client_id=issuer.client_id))
        sec = secure_listener("api", "127.0.0.1", auth, None, API_RULES, users=users)
        app = web.Application()
        sec.install(app)
        FleetApi(writer).setup(app)
        runner = web.AppRunner(app, **sec.runner_kwargs())
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield Api(f"http://127.0.0.1:{port}", issuer, token)
        finally:
            await runner.cleanup()
