"""TLS for tests: certificates, DNS records for DANE, TLS settings and one TLS delivery.

`Pki` is a trustme CA minted per test (the `pki` fixture, tests/conftest.py); `mint_*` make
self-signed or expired certificates trustme does not; `add_mx`/`add_tlsa` put records into a
`TlsZone` (tests/support/dns.py); `tls_settings(dns_port, **params)` is the client of the TLS
tests (the loopback DNS server, short TLS deadlines, `smtp_tls_loglevel = 1`) and
`send(nexthop, config)` one delivery of a message carrying `SECRET`, with its log lines;
`tls_field` reads the `tls=` field of the delivery line, `no_plaintext_envelope` checks the
scripted STARTTLS server saw no envelope and no `SECRET` in plaintext.

The STARTTLS server itself is tests/support/tls_server.py; the fixtures that start it and the
DNS server are in tests/conftest.py.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from dnslib import RR

from mailcarrier.config.settings import Settings
from mailcarrier.status import RecipientStatus
from tests.support.deliver import deliver_request, request_to
from tests.support.dns import TlsZone
from tests.support.settings import loopback_dns, make_settings
from tests.support.tls_server import ScriptedTlsServer, TlsServerScript

StartServer = Callable[[TlsServerScript], ScriptedTlsServer]
Zone = tuple[int, TlsZone]

SECRET = b"TOP-SECRET-BODY"
_TLS_FIELD = re.compile(r", tls=(\S+), dsn=")


@dataclass
class Pki:
    ca: trustme.CA
    tmp: Path

    def cafile(self) -> str:
        path = self.tmp / "ca.pem"
        self.ca.cert_pem.write_to_path(str(path))
        return str(path)

    def server_context(self, leaf: trustme.LeafCert) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        leaf.configure_cert(ctx)
        return ctx

    def leaf(self, *names: str) -> trustme.LeafCert:
        return self.ca.issue_cert(*names)


def _pem_pair(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def mint_self_signed(
    name: str, *, days_from: int = -1, days_to: int = 30
) -> tuple[x509.Certificate, bytes, bytes]:
    """A self-signed leaf (negative `days_to`: expired)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days_from))
        .not_valid_after(now + datetime.timedelta(days=days_to))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return (cert, *_pem_pair(cert, key))


def mint_expired_leaf(ca: trustme.CA, name: str) -> tuple[bytes, bytes]:
    """A leaf issued by `ca` that expired yesterday."""
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return _pem_pair(cert, key)


def context_from_pem(tmp: Path, cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    cert_path, key_path = tmp / "srv-cert.pem", tmp / "srv-key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert_path), str(key_path))
    return ctx


# --- DNS records for MX and DANE ------------------------------------------------------------


def add_mx(zone: TlsZone, domain: str, host: str, address: str = "127.0.0.1") -> None:
    zone.records.extend(RR.fromZone(f"{domain}. 300 IN MX 10 {host}.\n{host}. 300 IN A {address}"))


def add_tlsa(zone: TlsZone, host: str, port: int, data: str) -> str:
    owner = f"_{port}._tcp.{host}."
    zone.records.extend(RR.fromZone(f"{owner} 300 IN TLSA {data}"))
    return owner


def spki_sha256(leaf: trustme.LeafCert) -> str:
    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


# --- one TLS delivery -------------------------------------------------------------------------


# Short deadlines (the servers are on loopback) and the TLS log lines of smtp_tls_loglevel 1.
TLS_CLIENT: Final[Mapping[str, str]] = {
    "smtp_connect_timeout": "3s",
    "smtp_starttls_timeout": "5s",
    "smtp_tls_loglevel": "1",
}


def tls_settings(dns_port: int, **params: str) -> Settings:
    """The client of the TLS tests: names from the loopback DNS server on `dns_port`."""
    return make_settings(loopback_dns(dns_port), TLS_CLIENT, **params)


async def send(
    nexthop: str, config: Settings, *, recipient: str = "u@tls.test", waited: float = 0.0
) -> tuple[RecipientStatus, list[str]]:
    """Deliver a message carrying `SECRET` (queued `waited` seconds ago); its status and log."""
    request = request_to(
        nexthop,
        b"Subject: secret\n\n" + SECRET + b"\n",
        sender="s@example.org",
        recipients=[recipient],
    )
    if waited:
        request = dataclasses.replace(request, arrival_time=time.time() - waited)
    result, log = await deliver_request(request, config=config)
    return result.recipients[0], log.lines


def delivery_line(lines: list[str]) -> str:
    (line,) = [ln for ln in lines if ": to=<" in ln]
    return line


def tls_field(lines: list[str]) -> str | None:
    """The value of tls= in the (single) delivery line, None when absent."""
    found = _TLS_FIELD.search(delivery_line(lines))
    return found.group(1) if found else None


def no_plaintext_envelope(server: ScriptedTlsServer) -> bool:
    plain = bytes(server.capture.plain)
    return b"MAIL FROM" not in plain and b"RCPT TO" not in plain and SECRET not in plain
