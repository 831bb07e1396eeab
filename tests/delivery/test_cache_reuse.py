"""Connection reuse through the agent's cache: same destination, another destination on the
same server, expiry by age and by count, a server that closes a parked connection, and no
reuse after a 421 or a protocol error; a plaintext session taken from the cache makes no TLS
state when nothing but the settings decides its policy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mailcarrier import DeliveryStatus
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.delivery.cache import CacheLimits, ConnectionCache
from mailcarrier.delivery.tls_job import TlsClient
from mailcarrier.log import MemoryLog
from tests.support.clock import FakeClock
from tests.support.deliver import deliver_via
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler
from tests.support.settings import make_settings
from tests.support.tls import Pki


class CountingHandler(RecordingHandler):
    """Counts sessions (EHLOs) and can hang up after a message."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions = 0
        self.hang_up_after_data = False
        self.closed = asyncio.Event()

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.sessions += 1
        return await super().handle_EHLO(server, session, envelope, hostname, responses)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if self.hang_up_after_data:
            loop = asyncio.get_running_loop()
            transport = server.transport

            def hang_up() -> None:
                transport.close()
                loop.call_soon_threadsafe(self.closed.set)

            loop.call_later(0.01, hang_up)
        return reply


@pytest.fixture
def counting() -> Iterator[tuple[CountingHandler, AiosmtpdServer]]:
    handler = CountingHandler()
    server = AiosmtpdServer(handler).start()
    try:
        yield handler, server
    finally:
        server.stop()


def _agent(cache: ConnectionCache, **overrides: str) -> tuple[DeliveryAgent, MemoryLog]:
    log = MemoryLog()
    return DeliveryAgent(make_settings(overrides), log=log, cache=cache), log


def _tls_states_made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The destinations a TLS state (TlsClient.job) is made for, from now on."""
    made: list[str] = []
    job = TlsClient.job

    def spy(client: TlsClient, agent: Any, destination: str, **options: Any) -> Any:
        made.append(destination)
        return job(client, agent, destination, **options)

    monkeypatch.setattr(TlsClient, "job", spy)
    return made


async def _send(agent: DeliveryAgent, nexthop: str, rcpt: str = "u@example.net") -> Any:
    body = b"Subject: c\n\nhi\n"
    result = await deliver_via(agent, nexthop, body, sender="s@example.org", recipients=[rcpt])
    (status,) = result.recipients
    assert status.status is DeliveryStatus.SENT, status
    return status


async def test_same_destination_reuses_the_session(
    counting: tuple[CountingHandler, AiosmtpdServer],
) -> None:
    handler, server = counting
    cache = ConnectionCache(CacheLimits())
    agent, log = _agent(cache)
    uses = [(await _send(agent, server.nexthop)).conn_use for _ in range(3)]
    await cache.close_all()
    assert uses == [1, 2, 3]
    assert handler.sessions == 1
    assert len(server.messages) == 3
    assert ", conn_use=3, " in log.lines[-1]
    assert ", conn_use=" not in log.lines[0]  # Postfix shows conn_use only from 2 on


async def test_a_plaintext_session_from_the_cache_needs_no_tls_state(
    counting: tuple[CountingHandler, AiosmtpdServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a TLS table, MTA-STS policy or RFC 8689 flag the policy is settled
    (sts_step.settled_policy): the session set up makes the destination's TLS state for its
    TLS step; a session taken from the cache makes none (every delivery did since tables
    are asked on the loop, for a reuse key that reads the global policy)."""
    made = _tls_states_made(monkeypatch)
    handler, server = counting
    cache = ConnectionCache(CacheLimits())
    agent, _ = _agent(cache)
    uses = [(await _send(agent, server.nexthop)).conn_use for _ in range(3)]
    await cache.close_all()
    assert uses == [1, 2, 3]
    assert handler.sessions == 1
    assert made == [server.nexthop]


async def test_a_session_from_the_cache_under_a_policy_table_needs_no_tls_state(
    counting: tuple[CountingHandler, AiosmtpdServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a policy table that alone decides (no MTA-STS, no RFC 8689 flag), a session
    taken from the cache is keyed by the table's answer kept on the hop (Hop.resolved):
    only the session set up makes the destination's TLS state."""
    made = _tls_states_made(monkeypatch)
    handler, server = counting
    cache = ConnectionCache(CacheLimits())
    agent, _ = _agent(cache, smtp_tls_policy_maps="inline:{example.com=encrypt}")
    uses = [(await _send(agent, server.nexthop)).conn_use for _ in range(3)]
    await cache.close_all()
    assert uses == [1, 2, 3]
    assert handler.sessions == 1
    assert made == [server.nexthop]


async def test_reuse_count_limit(counting: tuple[CountingHandler, AiosmtpdServer]) -> None:
    handler, server = counting
    cache = ConnectionCache(CacheLimits(reuse_count=2))
    agent, _ = _agent(cache)
    uses = [(await _send(agent, server.nexthop)).conn_use for _ in range(5)]
    await cache.close_all()
    assert uses == [1, 2, 1, 2, 1]
    assert handler.sessions == 3


async def test_reuse_time_limit(counting: tuple[CountingHandler, AiosmtpdServer]) -> None:
    handler, server = counting
    clock = FakeClock(time.monotonic())  # the clock sessions take their start time from
    cache = ConnectionCache(CacheLimits(reuse_time=300), clock=clock)
    agent, _ = _agent(cache)
    first = await _send(agent, server.nexthop)
    clock.now += 299
    second = await _send(agent, server.nexthop)
    clock.now += 2  # now 301 s after the session was opened: too old to reuse
    third = await _send(agent, server.nexthop)
    await cache.close_all()
    assert (first.conn_use, second.conn_use, third.conn_use) == (1, 2, 1)
    assert handler.sessions == 2


async def test_server_closing_a_parked_session_is_not_a_failure(
    counting: tuple[CountingHandler, AiosmtpdServer],
) -> None:
    handler, server = counting
    cache = ConnectionCache(CacheLimits())
    agent, log = _agent(cache)
    handler.hang_up_after_data = True
    await _send(agent, server.nexthop)
    await asyncio.wait_for(handler.closed.wait(), 10)
    handler.hang_up_after_data = False
    status = await _send(agent, server.nexthop)
    await cache.close_all()
    assert status.conn_use == 1  # a new session, and no deferral on the way
    assert handler.sessions == 2
    assert not any("deferred" in line for line in log.lines)


async def test_no_reuse_after_421(counting: tuple[CountingHandler, AiosmtpdServer]) -> None:
    handler, server = counting
    cache = ConnectionCache(CacheLimits())
    agent, _ = _agent(cache)
    handler.data_reply = "250 2.0.0 Ok"
    await _send(agent, server.nexthop)
    session_count = handler.sessions
    handler.reject = {"busy@": "421 4.3.2 closing"}
    result = await deliver_via(
        agent, server, b"x\n", sender="s@example.org", recipients=["busy@example.net"]
    )
    (status,) = result.recipients
    assert status.status is DeliveryStatus.DEFERRED
    assert "421 4.3.2 closing" in status.diagnostic
    # The cached session got the 421 first; a fresh one was tried too. Neither is kept.
    assert handler.sessions == session_count + 1
    assert len(cache) == 0
    handler.reject = {}
    again = await _send(agent, server.nexthop)
    await cache.close_all()
    assert again.conn_use == 1
    assert handler.sessions == session_count + 2


async def test_no_reuse_after_a_protocol_error(
    counting: tuple[CountingHandler, AiosmtpdServer],
) -> None:
    handler, server = counting
    cache = ConnectionCache(CacheLimits())
    agent, _ = _agent(cache)
    handler.data_reply = "250 2.0.0 Ok"
    first = await _send(agent, server.nexthop)
    assert first.conn_use == 1 and len(cache) == 1
    handler.data_reply = "2x0 not a reply"  # malformed: a protocol error
    result = await deliver_via(
        agent, server, b"x\n", sender="s@example.org", recipients=["u@example.net"]
    )
    (broken,) = result.recipients
    # The reused session broke; a fresh one was tried too and broke the same way.
    assert broken.status is DeliveryStatus.DEFERRED
    assert "remote protocol error" in broken.diagnostic
    assert handler.sessions == 2
    assert len(cache) == 0  # neither is kept
    handler.data_reply = "250 2.0.0 Ok"
    again = await _send(agent, server.nexthop)
    await cache.close_all()
    assert again.conn_use == 1  # a new session
    assert handler.sessions == 3


async def test_cache_off_on_demand_no(counting: tuple[CountingHandler, AiosmtpdServer]) -> None:
    _, server = counting
    cache = ConnectionCache(CacheLimits())
    agent, _ = _agent(cache, smtp_connection_cache_on_demand="no")
    uses = [(await _send(agent, server.nexthop)).conn_use for _ in range(2)]
    assert uses == [1, 1]
    assert len(cache) == 0
    listed, _ = _agent(
        cache,
        smtp_connection_cache_on_demand="no",
        smtp_connection_cache_destinations=server.nexthop,
    )
    uses = [(await _send(listed, server.nexthop)).conn_use for _ in range(2)]
    await cache.close_all()
    assert uses == [1, 2]


async def test_another_destination_on_the_same_server_reuses_by_address(
    counting: tuple[CountingHandler, AiosmtpdServer], shared_dns: int
) -> None:
    handler, server = counting
    cache = ConnectionCache(CacheLimits())
    agent, _ = _agent(cache, dns_nameservers=f"127.0.0.1:{shared_dns}", inet_protocols="ipv4")
    first = await _send(agent, f"one.test:{server.port}", "a@one.test")
    second = await _send(agent, f"two.test:{server.port}", "b@two.test")
    await cache.close_all()
    assert (first.conn_use, second.conn_use) == (1, 2)
    assert second.relay == f"mx.shared.test[127.0.0.1]:{server.port}"
    assert handler.sessions == 1


class _AuthCounting(CountingHandler):
    """Accepts PLAIN for two users; records who authenticated on each session."""

    def __init__(self) -> None:
        super().__init__()
        self.logins: list[str] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        self.logins.append(data.login.decode())
        ok = data.password == b"pw-" + data.login
        return AuthResult(success=ok, handled=False)


async def test_no_reuse_across_sasl_identities(tmp_path: Any) -> None:
    handler = _AuthCounting()
    server = AiosmtpdServer(handler, authenticator=handler, auth_require_tls=False).start()
    try:
        passwd = tmp_path / "sasl_passwd"
        passwd.write_text("a@example.org alice:pw-alice\nb@example.org bob:pw-bob\n")
        cache = ConnectionCache(CacheLimits())
        agent, _ = _agent(
            cache,
            smtp_sasl_auth_enable="yes",
            smtp_sender_dependent_authentication="yes",
            smtp_sasl_password_maps=f"texthash:{passwd}",
            smtp_sasl_security_options="noanonymous",
        )

        async def send(sender: str) -> int:
            result = await deliver_via(
                agent, server, b"x\n", sender=sender, recipients=["r@example.net"]
            )
            (status,) = result.recipients
            assert status.status is DeliveryStatus.SENT, status
            return status.conn_use

        uses = [await send(s) for s in ("a@example.org", "b@example.org", "a@example.org")]
        await cache.close_all()
    finally:
        server.stop()
    # alice's session is reused for alice only; bob gets his own, authenticated as bob.
    assert uses == [1, 1, 2]
    assert handler.logins == ["alice", "bob"]
    assert handler.sessions == 2


@pytest.mark.parametrize(("reuse", "expected"), [("no", [1, 1]), ("yes", [1, 2])])
async def test_tls_sessions_are_reused_only_when_the_policy_says_so(
    pki: Pki, reuse: str, expected: list[int]
) -> None:
    """Postfix reuses TLS connections only with smtp_tls_connection_reuse (or the policy's
    connection_reuse=yes); we keep them in-process instead of through tlsproxy."""
    from aiosmtpd.controller import Controller

    from tests.support.peers.aiosmtpd_server import free_port

    handler = CountingHandler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=pki.server_context(pki.leaf("127.0.0.1")),
        require_starttls=True,
    )
    controller.start()
    try:
        cache = ConnectionCache(CacheLimits())
        agent, log = _agent(
            cache,
            smtp_tls_security_level="encrypt",
            smtp_tls_CAfile=pki.cafile(),
            smtp_tls_connection_reuse=reuse,
            smtp_tls_loglevel="1",
        )
        uses = [(await _send(agent, f"[127.0.0.1]:{port}")).conn_use for _ in range(2)]
        await cache.close_all()
    finally:
        controller.stop()
    assert uses == expected
    assert any("TLS connection established to 127.0.0.1[127.0.0.1]" in x for x in log.lines)


@pytest.mark.parametrize(
    ("second_level", "expected"), [("none", [1, 2]), ("may", [1, 1])], ids=["same", "other"]
)
async def test_tls_policy_is_part_of_the_address_key(
    counting: tuple[CountingHandler, AiosmtpdServer],
    tmp_path: Any,
    second_level: str,
    expected: list[int],
) -> None:
    """Two destinations reaching the same server share a session only when their TLS
    policies (smtp_tls_policy_maps, by next hop) are the same."""
    handler, server = counting
    policy = tmp_path / "tls_policy"
    policy.write_text(f"[127.0.0.1]:{server.port} none\n[localhost]:{server.port} {second_level}\n")
    cache = ConnectionCache(CacheLimits())
    agent, _ = _agent(
        cache,
        smtp_tls_policy_maps=f"texthash:{policy}",
        smtp_host_lookup="native",  # localhost from /etc/hosts, no DNS
        inet_protocols="ipv4",
    )
    first = await _send(agent, f"[127.0.0.1]:{server.port}")
    second = await _send(agent, f"[localhost]:{server.port}")
    await cache.close_all()
    assert [first.conn_use, second.conn_use] == expected
    assert handler.sessions == (1 if expected == [1, 2] else 2)
