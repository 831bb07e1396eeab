"""Fixtures for the TLS tests: certificates minted per test, a loopback DNS zone with
(``*.signed.test``) and without the AD bit, and the scripted STARTTLS server."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from dnslib import QTYPE, RR
from dnslib.server import DNSLogger, DNSServer

from tests.routing.routing_dnsserver import ZoneResolver
from tests.tls.tls_server import ScriptedTlsServer, TlsServerScript


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


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(trustme.CA(), tmp_path)


@pytest.fixture
def tls_server() -> Iterator[Callable[[TlsServerScript], ScriptedTlsServer]]:
    servers: list[ScriptedTlsServer] = []

    def start(script: TlsServerScript) -> ScriptedTlsServer:
        server = ScriptedTlsServer(script).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


class TlsZone(ZoneResolver):
    """The routing test zone plus names that answer SERVFAIL for TLSA questions, and
    per-question control of the AD bit: names under signed.test get it unless the
    (qname, qtype) pair is in `insecure`; pairs in `secure` get it wherever they are."""

    servfail: tuple[str, ...] = ()
    insecure: frozenset[tuple[str, str]] = frozenset()
    secure: frozenset[tuple[str, str]] = frozenset()

    def resolve(self, request, handler):  # type: ignore[no-untyped-def]
        qname = str(request.q.qname).lower()
        if qname in self.servfail:
            reply = request.reply()
            reply.header.rcode = 2
            return reply
        reply = super().resolve(request, handler)
        question = (qname, QTYPE[request.q.qtype])
        if question in self.insecure:
            reply.header.ad = 0
        elif question in self.secure:
            reply.header.ad = 1
        return reply

    def tlsa_queries(self) -> list[str]:
        with self.lock:
            return [name for name, qtype in self.queries if qtype == "TLSA"]


@pytest.fixture
def dns_zone() -> Iterator[tuple[int, TlsZone]]:
    zone = TlsZone(records=RR.fromZone('tls.test. 300 IN TXT "tls tests"'))
    logger = DNSLogger(log="-request,-reply,-truncated,-error", prefix=False)
    server = DNSServer(zone, port=0, address="127.0.0.1", logger=logger)
    server.start_thread()
    try:
        yield int(server.server.server_address[1]), zone
    finally:
        server.stop()
        server.server.server_close()
