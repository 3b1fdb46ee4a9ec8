"""Site scoping of cloud queries (unit) — the API test checks it against a real InfluxDB."""

from __future__ import annotations

from cloud.site_scope import NOTHING, and_sites, where_sites
from runtime.security.roles import ALL, Principal, Role


def p(*sites: str, role: Role = Role.VIEWER) -> Principal:
    return Principal("u", frozenset({role}), sites=frozenset(sites), method="oidc")


def test_scope_clause() -> None:
    assert where_sites(p("site-a")) == "(\"site\" = 'site-a')"
    assert where_sites(p("b", "a")) == "(\"site\" = 'a' OR \"site\" = 'b')"
    assert where_sites(p(ALL)) is None and where_sites(p(role=Role.ADMIN)) is None
    assert where_sites(p()) == NOTHING
    assert where_sites(p("x'; DROP")) == NOTHING  # never spliced
    assert and_sites(p("a"), "time > now() - 6h") == "WHERE time > now() - 6h AND (\"site\" = 'a')"
    assert and_sites(p(role=Role.ADMIN)) == ""
