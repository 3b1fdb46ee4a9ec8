"""``pulsegate user add|passwd|remove|list|token|revoke-tokens``: the gateway's local accounts.

    pulsegate user add alice --role nurse --ward ward-7        asks for the password twice
    pulsegate user add prom --role service --token             a machine account: prints an API token once
    pulsegate user passwd alice                                ends alice's sessions on the running daemon
    pulsegate user list [--json]
    pulsegate user remove alice

The file (default /var/lib/pulsegate/users.json, ``--users-file``) holds argon2id
hashes only, mode 0600, written atomically; the daemon re-reads it on change.
``--password-stdin`` reads the password from standard input (scripts);
``--generate`` makes a random one and prints it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import secrets
import sys
from pathlib import Path

from pulsegate.cli import Commands, example

DEFAULT_USERS_FILE = Path("/var/lib/pulsegate/users.json")


def register(cmds: Commands) -> None:
    user = example(cmds.top.add_parser("user", help="local accounts of a gateway (argon2id)"),
                   "pulsegate user add alice --role nurse --ward ward-7", "pulsegate user list").add_subparsers(
        dest="user_cmd", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--users-file", type=Path, default=DEFAULT_USERS_FILE,
                       help="the accounts file the daemon reads (default: %(default)s)")

    def password_source(p: argparse.ArgumentParser) -> None:
        g = p.add_mutually_exclusive_group()
        g.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
        g.add_argument("--generate", action="store_true", help="make a random password and print it")

    p = user.add_parser("add", help="add an account")
    p.add_argument("name", help="login name (the audit identity)")
    p.add_argument("--role", action="append", required=True,
                   help="nurse, charge_nurse, viewer, clinician, admin or service (repeatable)")
    p.add_argument("--ward", action="append", default=[], help="wards a nurse acts on (repeatable; * for all)")
    p.add_argument("--site", action="append", default=[], help="sites seen in the cloud (repeatable; * for all)")
    p.add_argument("--token", action="store_true", help="also make an API token (machines) and print it")
    password_source(p)
    common(p)
    p.set_defaults(handler=_add)
    example(p, "pulsegate user add alice --role nurse --ward ward-7     # asks for the password twice",
            "pulsegate user add prom --role service --token          # a machine account: prints a token once")
    p = user.add_parser("passwd", help="set a new password (ends the user's sessions)")
    p.add_argument("name", help="the account's login name")
    password_source(p)
    common(p)
    p.set_defaults(handler=_passwd)
    example(p, "pulsegate user passwd alice", "pulsegate user passwd alice --generate")
    p = user.add_parser("remove", help="remove an account (ends its sessions, revokes its tokens)")
    p.add_argument("name", help="the account's login name")
    common(p)
    p.set_defaults(handler=_remove)
    example(p, "pulsegate user remove alice")
    p = user.add_parser("list", help="list accounts (never hashes or tokens)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common(p)
    p.set_defaults(handler=_list)
    example(p, "pulsegate user list", "pulsegate user list --json --users-file /var/lib/pulsegate/users.json")
    p = user.add_parser("token", help="make a new API token for an account and print it once")
    p.add_argument("name", help="the account's login name")
    common(p)
    p.set_defaults(handler=_token)
    example(p, "pulsegate user token prom")
    p = user.add_parser("revoke-tokens", help="revoke every API token of an account")
    p.add_argument("name", help="the account's login name")
    common(p)
    p.set_defaults(handler=_revoke)
    example(p, "pulsegate user revoke-tokens prom")


def _password(args: argparse.Namespace) -> str:
    if args.generate:
        pw = secrets.token_urlsafe(15)
        print(f"password for {args.name}: {pw}")
        return pw
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def _run(args: argparse.Namespace, action: str) -> int:
    from runtime.security.users import UserStore

    try:
        store = UserStore(args.users_file)
        if action == "add":
            store.add(args.name, _password(args), args.role, args.ward, args.site)
            if args.token:
                print(f"API token for {args.name} (shown once): {store.new_token(args.name)}")
        elif action == "passwd":
            store.passwd(args.name, _password(args))
        elif action == "remove":
            store.remove(args.name)
        elif action == "token":
            print(f"API token for {args.name} (shown once): {store.new_token(args.name)}")
        elif action == "revoke-tokens":
            print(f"revoked {store.revoke_tokens(args.name)} token(s) of {args.name}")
        store.save()
    except (ValueError, OSError) as exc:
        print(f"pulsegate user {action}: {exc}", file=sys.stderr)
        return 1
    if action in ("add", "passwd", "remove"):
        print(f"{action}: {args.name} ({args.users_file})")
    return 0


def _add(args: argparse.Namespace) -> int:
    return _run(args, "add")


def _passwd(args: argparse.Namespace) -> int:
    return _run(args, "passwd")


def _remove(args: argparse.Namespace) -> int:
    return _run(args, "remove")


def _token(args: argparse.Namespace) -> int:
    return _run(args, "token")


def _revoke(args: argparse.Namespace) -> int:
    return _run(args, "revoke-tokens")


def _list(args: argparse.Namespace) -> int:
    from runtime.security.users import UserStore

    try:
        store = UserStore(args.users_file)
    except (ValueError, OSError) as exc:
        print(f"pulsegate user list: {exc}", file=sys.stderr)
        return 1
    users = sorted(store.users.values(), key=lambda u: u.name)
    if args.json:
        print(json.dumps([{"name": u.name, "roles": sorted(u.roles), "wards": sorted(u.wards),
                           "sites": sorted(u.sites), "tokens": len(u.tokens)} for u in users]))
        return 0
    for u in users:
        print(f"{u.name:<24} roles={','.join(sorted(u.roles))} wards={','.join(sorted(u.wards)) or '-'} "
              f"sites={','.join(sorted(u.sites)) or '-'} tokens={len(u.tokens)}")
    return 0
