"""TLS for every HTTP listener: a server context from a certificate and key, and a self-signed pair.

The certificate and key are named like any secret: a path, or
``credential:NAME`` for a systemd credential (``LoadCredential=``). The context
allows TLS 1.2 and newer only. ``selfsigned`` makes an ECDSA P-256 pair for a
first start (``pulsegate cert selfsigned``): browsers warn about it, as they
should, and so does the daemon at every start; replace it with one from the
hospital's CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from runtime.configbase import SecretError, secret_path
from runtime.logs import get_logger

log = get_logger("security.tls")


class TlsError(ValueError):
    pass


def server_context(cert: str, key: str, base: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        cert_path, key_path = secret_path(cert, base), secret_path(key, base)
    except SecretError as exc:
        raise TlsError(str(exc)) from None
    try:
        ctx.load_cert_chain(cert_path, key_path)
    except FileNotFoundError as exc:
        raise TlsError(f"TLS: cannot read {exc.filename}") from None
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"TLS: certificate {cert_path} / key {key_path} do not load: {exc}") from None
    if is_self_signed(cert_path):
        log.warning("tls_self_signed", cert=str(cert_path),
                    hint="browsers warn about it: replace it with a certificate from your CA")
    return ctx


def is_self_signed(cert_path: Path) -> bool:
    """The first certificate of the chain is its own issuer (``pulsegate cert selfsigned``)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    return cert.issuer == cert.subject


def selfsigned(hosts: list[str], days: int = 365) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) for ``hosts`` (DNS names and IP addresses, the first is the CN)."""
    if not hosts:
        raise TlsError("a certificate needs at least one host name or address")
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PulseGate self-signed")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_selfsigned(cert_path: Path, key_path: Path, hosts: list[str], days: int = 365,
                     overwrite: bool = False) -> None:
    """Write a self-signed pair: the key with mode 0600 (created so, never readable by others)."""
    for p in (cert_path, key_path):
        if p.exists() and not overwrite:
            raise TlsError(f"{p} exists (pass --force to replace it)")
    cert_pem, key_pem = selfsigned(hosts, days)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.unlink(missing_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    cert_path.write_bytes(cert_pem)
