"""When SASL passwords are looked up around connection reuse (delivery/reuse.py).

As smtp(8): the password is looked up when a session is set up; a session taken from the
connection cache without sender-dependent authentication is reused without a lookup; with
smtp_sender_dependent_authentication the credentials are looked up again for the request's
sender and the address key carries that username. A real server (aiosmtpd, AUTH PLAIN)
counts the logins; a spy on the password search counts the lookups. The address key a
parked session keeps follows a new TLS policy answer and a new configuration.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailcarrier import DeliveryStatus
from mailcarrier.delivery import auth_step
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.delivery.cache import CacheLimits, ConnectionCache
from mailcarrier.log import MemoryLog
from mailcarrier.sasl import passwords
from tests.support import sqldata
from tests.support.deliver import deliver_via
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler
from tests.support.settings import make_settings


class _Logins(RecordingHandler):
    """Accepts PLAIN when the password is "pw-" + the user; records each login."""

    def __init__(self) -> None:
        super().__init__()
        self.logins: list[str] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        self.logins.append(data.login.decode())
        return AuthResult(success=data.password == b"pw-" + data.login, handled=False)


@pytest.fixture
def auth_server() -> Iterator[tuple[_Logins, AiosmtpdServer]]:
    handler = _Logins()
    server = AiosmtpdServer(handler, authenticator=handler, auth_require_tls=False).start()
    try:
        yield handler, server
    finally:
        server.stop()


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hosts each password search (either flavour) was made for."""
    seen: list[str] = []
    sync, asynchronous = passwords.lookup_credentials, passwords.lookup_credentials_async

    def spy(maps: Any, **search: Any) -> Any:
        seen.append(search["host"])
        return sync(maps, **search)

    async def spy_async(maps: Any, **search: Any) -> Any:
        seen.append(search["host"])
        return await asynchronous(maps, **search)

    monkeypatch.setattr(auth_step, "lookup_credentials", spy)
    monkeypatch.setattr(auth_step, "lookup_credentials_async", spy_async)
    return seen


def _agent(
    tmp_path: Path,
    server: AiosmtpdServer,
    cache: ConnectionCache | None,
    sender_dependent: str,
    hop_user: str = "carol",
    **extra: str,
) -> DeliveryAgent:
    passwd = tmp_path / "sasl_passwd"
    passwd.write_text(
        f"a@example.org alice:pw-alice\nb@example.org bob:pw-bob\n"
        f"[127.0.0.1]:{server.port} {hop_user}:pw-{hop_user}\n"
    )
    settings = make_settings(
        {
            "smtp_sasl_auth_enable": "yes",
            "smtp_sender_dependent_authentication": sender_dependent,
            "smtp_sasl_password_maps": f"texthash:{passwd}",
            "smtp_sasl_security_options": "noanonymous",
            **extra,
        }
    )
    return DeliveryAgent(settings, log=MemoryLog(), cache=cache)


async def _send(agent: DeliveryAgent, server: AiosmtpdServer, sender: str) -> int:
    result = await deliver_via(agent, server, b"x\n", sender=sender, recipients=["r@example.net"])
    (status,) = result.recipients
    assert status.status is DeliveryStatus.SENT, status
    return status.conn_use


async def test_no_lookup_on_reuse_without_sender_dependent_auth(
    tmp_path: Path, auth_server: tuple[_Logins, AiosmtpdServer], lookups: list[str]
) -> None:
    handler, server = auth_server
    cache = ConnectionCache(CacheLimits())
    agent = _agent(tmp_path, server, cache, "no")
    uses = []
    counts = []
    for sender in ("a@example.org", "b@example.org", "a@example.org"):
        uses.append(await _send(agent, server, sender))
        counts.append(len(lookups))
    await cache.close_all()
    # One session, authenticated once as the next hop's user; looked up for it only.
    assert uses == [1, 2, 3]
    assert handler.logins == ["carol"]
    assert counts == [1, 1, 1]
    assert lookups == ["127.0.0.1"]


async def test_lookup_on_reuse_with_sender_dependent_auth(
    tmp_path: Path, auth_server: tuple[_Logins, AiosmtpdServer], lookups: list[str]
) -> None:
    handler, server = auth_server
    cache = ConnectionCache(CacheLimits())
    agent = _agent(tmp_path, server, cache, "yes")
    uses = [await _send(agent, server, "a@example.org") for _ in range(3)]
    keys = sorted(key for key in cache._by_key if "|addr:" in key)
    await cache.close_all()
    # Reused, authenticated once; every delivery looks the sender's credentials up.
    assert uses == [1, 2, 3]
    assert handler.logins == ["alice"]
    assert lookups == ["127.0.0.1"] * 3
    # The address key carries the sender and the username it looked up.
    (key,) = keys
    assert "sasl=sender=a@example.org;sasl=alice:" in key


@pytest.mark.parametrize("sender_dependent", ["no", "yes"])
async def test_a_first_connection_always_looks_up(
    tmp_path: Path,
    auth_server: tuple[_Logins, AiosmtpdServer],
    lookups: list[str],
    sender_dependent: str,
) -> None:
    """Without a connection cache every delivery sets a session up: one lookup each."""
    handler, server = auth_server
    agent = _agent(tmp_path, server, None, sender_dependent)
    uses = [await _send(agent, server, "a@example.org") for _ in range(2)]
    assert uses == [1, 1]
    assert lookups == ["127.0.0.1", "127.0.0.1"]
    user = "alice" if sender_dependent == "yes" else "carol"
    assert handler.logins == [user, user]


def _address_keys(cache: ConnectionCache) -> list[str]:
    return sorted(key for key in cache._by_key if "|addr:" in key)


async def test_a_parked_session_takes_the_key_of_a_new_policy_answer(
    tmp_path: Path, auth_server: tuple[_Logins, AiosmtpdServer]
) -> None:
    """The address key kept on a session is made again when the server's TLS policy
    changes between requests (here the sqlite: table's answer), never reused stale."""
    handler, server = auth_server
    db = tmp_path / "policy.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE m (k TEXT, v TEXT)")
        conn.execute("INSERT INTO m VALUES (?, 'may')", (f"[127.0.0.1]:{server.port}",))
    conn.close()
    cf = tmp_path / "policy.cf"
    cf.write_text(sqldata.cf_text(dbpath=str(db), query="SELECT v FROM m WHERE k='%s'"))
    cache = ConnectionCache(CacheLimits())
    agent = _agent(tmp_path, server, cache, "no", smtp_tls_policy_maps=f"sqlite:{cf}")
    keys: list[str] = []
    for answer in ("may", "may", "may ciphers=high", "may ciphers=high", "may"):
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE m SET v = ?", (answer,))
        conn.close()
        assert await _send(agent, server, "a@example.org") == len(keys) + 1
        (key,) = _address_keys(cache)
        keys.append(key)
    await cache.close_all()
    assert handler.logins == ["carol"]
    assert keys[0] == keys[1] == keys[4] != keys[2] == keys[3]
    assert "ciphers='medium'" in keys[0] and "sasl=carol:" in keys[0]
    assert "ciphers='high'" in keys[2] and "sasl=carol:" in keys[2]


async def test_a_parked_session_is_keyed_again_under_a_new_configuration(
    tmp_path: Path, auth_server: tuple[_Logins, AiosmtpdServer], lookups: list[str]
) -> None:
    """A session parked under one configuration and taken under another (an agent with
    new settings sharing the cache) gets the SASL identity of the new one: neither the
    identity nor the key kept on the session outlives the configuration it was made
    under."""
    handler, server = auth_server
    cache = ConnectionCache(CacheLimits())
    first = _agent(tmp_path, server, cache, "no")
    assert await _send(first, server, "a@example.org") == 1
    (before,) = _address_keys(cache)
    second = _agent(tmp_path, server, cache, "no", hop_user="dave")
    # Same label and destination key: the second agent takes the session parked by the first.
    assert await _send(second, server, "a@example.org") == 2
    (after,) = _address_keys(cache)
    await cache.close_all()
    assert handler.logins == ["carol"]
    assert lookups == ["127.0.0.1", "127.0.0.1"]
    head, _, tail = before.partition("sasl=carol:")
    assert tail and after.startswith(head + "sasl=dave:")
    assert after.endswith(tail[tail.index("|") :])
