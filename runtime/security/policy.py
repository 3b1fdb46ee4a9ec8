"""Secure by default: which listeners may start, and how loudly an insecure one says so.

A listener bound to anything but a loopback address must have authentication
and TLS. ``insecure_no_auth = true`` lifts the rule (a closed lab network, a
reverse proxy that does it all); the daemon then logs an error-level line at
every start, so it is never forgotten.
"""

from __future__ import annotations

import ipaddress

from runtime.logs import get_logger

log = get_logger("security")


class InsecureListenerError(ValueError):
    pass


def is_loopback(host: str) -> bool:
    h = host.strip("[]")
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_listener(name: str, host: str, *, auth: bool, tls: bool, insecure_no_auth: bool) -> None:
    """Raise InsecureListenerError when ``name`` on ``host`` may not start as configured."""
    if insecure_no_auth:
        log.error("insecure_listener", listener=name, host=host, auth=auth, tls=tls,
                  reason="insecure_no_auth = true: anyone who reaches this port can read patient data and "
                         "silence alarms")
        return
    if is_loopback(host):
        return
    missing = [what for what, ok in (("authentication", auth), ("TLS", tls)) if not ok]
    if missing:
        raise InsecureListenerError(
            f"{name}: listening on {host} (not loopback) without {' and '.join(missing)}; configure them, "
            f"or set insecure_no_auth = true to accept the risk")
