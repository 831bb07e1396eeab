"""Shared fixtures: real receiving servers on loopback (aiosmtpd, Postfix smtp-sink), the
scripted server, and the TLS tests' certificates, STARTTLS server and DNS zone.

The fixtures only start and stop what tests/support defines (peers/, scripted.py, tls.py,
tls_server.py, dns.py); a test package's own fixtures are in its conftest.py.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme
from dnslib import RR

from mailcarrier.routing import resolver as dns_resolver
from tests.support import sqldata
from tests.support.dns import TlsZone, serve_zone
from tests.support.peers import mariadb, pgsql, postfix_sink
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler
from tests.support.scripted import ScriptedServer, StartScripted, Step
from tests.support.tls import Pki, StartServer
from tests.support.tls_server import ScriptedTlsServer, TlsServerScript


@pytest.fixture(autouse=True)
def _dns_stays_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Network safety: a test may only build a resolver pointed at a loopback server.

    This machine's /etc/resolv.conf names a non-loopback server; a test that forgot to set
    dns_nameservers would send it queries. Fail such a test instead.
    """
    original = dns_resolver.DnspythonResolver.__init__

    def guarded(self: dns_resolver.DnspythonResolver, config: dns_resolver.ResolverConfig) -> None:
        servers = config.nameservers
        if not servers or any(not ipaddress.ip_address(ns.address).is_loopback for ns in servers):
            raise AssertionError(
                "test would query a non-loopback DNS server: set dns_nameservers to the "
                f"loopback test server (got {[str(ns) for ns in servers] or 'resolv.conf'})"
            )
        original(self, config)

    monkeypatch.setattr(dns_resolver.DnspythonResolver, "__init__", guarded)


@pytest.fixture
def smtp_handler() -> RecordingHandler:
    return RecordingHandler()


@pytest.fixture
def smtp_server(smtp_handler: RecordingHandler) -> Iterator[AiosmtpdServer]:
    server = AiosmtpdServer(smtp_handler).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory path (unix socket paths are limited to ~100 bytes)."""
    with tempfile.TemporaryDirectory(prefix="mc-", dir="/tmp") as d:
        os.chmod(d, 0o777)
        yield Path(d)


@pytest.fixture
def smtp_sink() -> Iterator[postfix_sink.SmtpSink]:
    if not postfix_sink.available():
        pytest.skip("Postfix smtp-sink not installed or not root")
    sink = postfix_sink.SmtpSink("-c", "-p", "-8", "-e").start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def lmtp_sink(short_tmp: Path) -> Iterator[postfix_sink.SmtpSink]:
    if not postfix_sink.available():
        pytest.skip("Postfix smtp-sink not installed or not root")
    sink = postfix_sink.SmtpSink("-c", "-p", lmtp=True, unix_path=str(short_tmp / "lmtp")).start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
async def scripted() -> AsyncIterator[StartScripted]:
    """A factory of scripted servers (tests/support/scripted.py), stopped after the test."""
    servers: list[ScriptedServer] = []

    async def start(*scripts: list[Step], host: str = "127.0.0.1") -> ScriptedServer:
        server = await ScriptedServer(*scripts, host=host).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A certificate authority minted for this test (trustme)."""
    return Pki(trustme.CA(), tmp_path)


@pytest.fixture
def tls_server() -> Iterator[StartServer]:
    """A factory of scripted STARTTLS servers (tests/support/tls_server.py), stopped after."""
    servers: list[ScriptedTlsServer] = []

    def start(script: TlsServerScript) -> ScriptedTlsServer:
        server = ScriptedTlsServer(script).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def dns_zone() -> Iterator[tuple[int, TlsZone]]:
    """The TLS tests' DNS zone on a loopback server of its own: (port, zone)."""
    zone = TlsZone(records=RR.fromZone('tls.test. 300 IN TXT "tls tests"'))
    with serve_zone(zone) as port:
        yield port, zone


def _sql_root() -> Path:
    """A directory the unprivileged database user can reach (pytest's tmp_path is 0700)."""
    root = Path(tempfile.mkdtemp(prefix="mc-sql-", dir="/tmp"))
    os.chmod(root, 0o755)
    return root


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pgsql.PgServer]:
    """A private PostgreSQL server for the session, filled with tests/support/sqldata.py."""
    if not pgsql.available():
        pytest.skip("PostgreSQL server binaries not installed (Debian postgresql)")
    server = pgsql.PgServer(_sql_root())
    try:
        server.start()
        sqldata.fill_pgsql(server)
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def maria_server() -> Iterator[mariadb.MariaDb]:
    """A private MariaDB server for the session, filled with tests/support/sqldata.py."""
    if not mariadb.available():
        pytest.skip("MariaDB server binaries not installed (Debian mariadb-server)")
    server = mariadb.MariaDb(_sql_root())
    try:
        server.start()
        sqldata.fill_mysql(server)
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)
