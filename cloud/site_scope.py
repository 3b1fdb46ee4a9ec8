"""Site scoping for the cloud API: a hospital's staff see only their own sites.

The principal's sites come from the identity provider's claims (OIDC) or from
the account (API tokens); ``*`` or the admin role means every site. Every
InfluxQL query of the API takes ``where_sites(principal)``, so a point of
another site never leaves InfluxDB for that user; site ids are checked
against the id pattern before they are spliced in (they are tags the gateway
wrote, ``[A-Za-z0-9_-]{1,64}``).
"""

from __future__ import annotations

import re

from runtime.security.roles import Principal

_SITE = re.compile(r"[A-Za-z0-9_-]{1,64}")
NOTHING = '"site" = \'\' AND "site" != \'\''  # matches no point: a principal without any site


def where_sites(principal: Principal) -> str | None:
    """An InfluxQL condition limiting a query to the principal's sites; None when they see every site."""
    scope = principal.site_scope()
    if scope is None:
        return None
    sites = sorted(s for s in scope if _SITE.fullmatch(s))
    if not sites:
        return NOTHING
    return "(" + " OR ".join(f"\"site\" = '{s}'" for s in sites) + ")"


def and_sites(principal: Principal, where: str = "") -> str:
    """``where`` (an InfluxQL condition, or empty) with the site scope added: ``WHERE ...`` or empty."""
    scope = where_sites(principal)
    parts = [p for p in (where, scope) if p]
    return ("WHERE " + " AND ".join(parts)) if parts else ""
