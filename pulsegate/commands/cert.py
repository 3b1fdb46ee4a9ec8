"""``pulsegate cert selfsigned``: a certificate and key for a first start of a listener over TLS.

    pulsegate cert selfsigned --host ward7-gw.hospital.example --host 10.1.2.3 \
        --cert /etc/pulsegate/tls/cert.pem --key /etc/pulsegate/tls/key.pem

Browsers warn about a self-signed certificate, and they should: replace it with
one from the hospital's certificate authority (same two paths, then restart).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pulsegate.cli import Commands, example


def register(cmds: Commands) -> None:
    cert = example(cmds.top.add_parser("cert", help="TLS certificates for the HTTP listeners"),
                   "pulsegate cert selfsigned --host ward7-gw --cert cert.pem --key key.pem").add_subparsers(
        dest="cert_cmd", metavar="ACTION", required=True)
    p = cert.add_parser("selfsigned", help="write a self-signed certificate and key (ECDSA P-256)")
    p.add_argument("--host", action="append", required=True, help="DNS name or IP address (repeatable)")
    p.add_argument("--cert", type=Path, required=True, help="where to write the certificate (PEM)")
    p.add_argument("--key", type=Path, required=True, help="where to write the key (PEM, mode 0600)")
    p.add_argument("--days", type=int, default=365, help="days the certificate is valid")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.set_defaults(handler=_selfsigned)
    example(p, "pulsegate cert selfsigned --host ward7-gw.hospital.example --host 10.1.2.3 "
               "--cert /etc/pulsegate/tls/cert.pem --key /etc/pulsegate/tls/key.pem")


def _selfsigned(args: argparse.Namespace) -> int:
    from runtime.security.tls import write_selfsigned

    if not 1 <= args.days <= 3650:
        print("pulsegate cert selfsigned: --days must be 1 to 3650", file=sys.stderr)
        return 2
    try:
        write_selfsigned(args.cert, args.key, list(args.host), args.days, overwrite=args.force)
    except (ValueError, OSError) as exc:
        print(f"pulsegate cert selfsigned: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.cert} and {args.key} (mode 0600) for {', '.join(args.host)}, valid {args.days} days")
    print("warning: self-signed: browsers will warn; replace it with a certificate from your CA", file=sys.stderr)
    return 0
