"""Roles, what each may do, and the authenticated principal every request carries.

A role is a fixed bundle of permissions; a route names the permission it needs
(``Access``), never a role, so adding a role never means auditing every route.

    nurse         sees the ward, acknowledges and silences alarms of the wards assigned (short silences)
    charge_nurse  as nurse, on every ward, with longer silences
    viewer        reads the ward (or the fleet), acts on nothing
    clinician     the endoscopy live view
    admin         everything: config, users, model operations, metrics
    service       machines: nurse-call/pager integrations and Prometheus (API tokens, no browser session)
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field


class Role(enum.StrEnum):
    NURSE = "nurse"
    CHARGE_NURSE = "charge_nurse"
    VIEWER = "viewer"
    CLINICIAN = "clinician"
    ADMIN = "admin"
    SERVICE = "service"


class Access(enum.StrEnum):
    """What a route needs. PUBLIC and AUTHENTICATED are the two that name no permission."""

    PUBLIC = "public"
    AUTHENTICATED = "authenticated"
    VIEW_WARD = "view_ward"
    ACT_ON_ALARMS = "act_on_alarms"
    ALL_WARDS = "all_wards"
    LIVE_VIEW = "live_view"
    VIEW_FLEET = "view_fleet"
    METRICS = "metrics"
    ADMIN = "admin"


PERMISSIONS: dict[Role, frozenset[Access]] = {
    Role.NURSE: frozenset({Access.VIEW_WARD, Access.ACT_ON_ALARMS}),
    Role.CHARGE_NURSE: frozenset({Access.VIEW_WARD, Access.ACT_ON_ALARMS, Access.ALL_WARDS}),
    Role.VIEWER: frozenset({Access.VIEW_WARD, Access.VIEW_FLEET}),
    Role.CLINICIAN: frozenset({Access.LIVE_VIEW}),
    Role.ADMIN: frozenset(Access) - {Access.PUBLIC},
    Role.SERVICE: frozenset({Access.VIEW_WARD, Access.METRICS}),
}

# The longest audio pause each role may ask for (seconds); a role not named may not silence.
MAX_SILENCE_S: dict[Role, float] = {
    Role.NURSE: 120.0,
    Role.CHARGE_NURSE: 600.0,
    Role.ADMIN: 600.0,
}

ALL = "*"  # in a user's wards or sites: every ward / site


def parse_roles(values: Iterable[str]) -> frozenset[Role]:
    """Roles from their names; ValueError names the one that is not a role."""
    out: set[Role] = set()
    for v in values:
        try:
            out.add(Role(v))
        except ValueError:
            raise ValueError(f"unknown role {v!r} (roles: {', '.join(r.value for r in Role)})") from None
    return frozenset(out)


@dataclass(frozen=True)
class Principal:
    """Who is asking: a local user, an OIDC subject or a machine token.

    ``wards`` scope a gateway's users, ``sites`` the cloud's; ``"*"`` means all.
    ``method`` is how they proved it: session, token, oidc, or insecure (no auth configured).
    """

    name: str
    roles: frozenset[Role]
    wards: frozenset[str] = field(default_factory=frozenset)
    sites: frozenset[str] = field(default_factory=frozenset)
    method: str = "session"

    def may(self, access: Access) -> bool:
        if access is Access.PUBLIC:
            return True
        if access is Access.AUTHENTICATED:
            return bool(self.roles)
        return any(access in PERMISSIONS[r] for r in self.roles)

    def max_silence_s(self) -> float:
        """The longest silence this principal may set; 0 when none of its roles may silence."""
        return max((MAX_SILENCE_S.get(r, 0.0) for r in self.roles), default=0.0)

    def on_ward(self, ward: str) -> bool:
        """May act on the beds of ``ward``: assigned to it, to every ward, or a role that spans all wards."""
        return ALL in self.wards or ward in self.wards or self.may(Access.ALL_WARDS)

    def site_scope(self) -> frozenset[str] | None:
        """The sites this principal may see in the cloud; None means every site."""
        if ALL in self.sites or Role.ADMIN in self.roles:
            return None
        return self.sites

    def sees_site(self, site: str) -> bool:
        scope = self.site_scope()
        return scope is None or site in scope


INSECURE = Principal("insecure-no-auth", frozenset({Role.ADMIN}), frozenset({ALL}), frozenset({ALL}), "insecure")
