"""Helpers shared by the TLS delivery tests of tests/tls: settings pointing at the loopback
DNS zone, one delivery with its log lines, and the delivery line's tls= field."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from dnslib import RR

from mailcarrier import deliver, make_request
from mailcarrier.config import Settings
from mailcarrier.log import MemoryLog
from mailcarrier.status import RecipientStatus
from tests.tls.tls_fixtures import TlsZone
from tests.tls.tls_server import ScriptedTlsServer, TlsServerScript

StartServer = Callable[[TlsServerScript], ScriptedTlsServer]
Zone = tuple[int, TlsZone]

SECRET = b"TOP-SECRET-BODY"
_TLS_FIELD = re.compile(r", tls=(\S+), dsn=")


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


def settings(dns_port: int, **params: str) -> Settings:
    return Settings.defaults().with_overrides(
        {
            "dns_nameservers": f"127.0.0.1:{dns_port}",
            "dns_timeout": "2s",
            "smtp_connect_timeout": "3s",
            "smtp_starttls_timeout": "5s",
            "inet_protocols": "ipv4",
            "smtp_tls_loglevel": "1",
            **params,
        }
    )


async def send(
    nexthop: str, config: Settings, *, recipient: str = "u@tls.test"
) -> tuple[RecipientStatus, list[str]]:
    log = MemoryLog()
    request = make_request(
        b"Subject: secret\n\n" + SECRET + b"\n",
        sender="s@example.org",
        recipients=[recipient],
        nexthop=nexthop,
    )
    result = await deliver(request, config=config, log=log)
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
