"""Routing recipients to (transport, next hop)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mailcarrier.queue.route import RESOLVER_FAILURE, Route, Router
from mailcarrier.tables.base import TableLookupError
from tests.support import sqldata
from tests.support.settings import queue_settings


def test_relayhost_and_domain(tmp_path: Path) -> None:
    assert Router(queue_settings(tmp_path)).route("a@example.net") == Route(
        "smtp", "[127.0.0.1]:2525"
    )
    assert Router(queue_settings(tmp_path, relayhost="")).route("a@example.net") == Route(
        "smtp", "example.net"
    )


def test_relayhost_list_goes_whole_to_the_agent(tmp_path: Path) -> None:
    """Postfix 3.5+: relayhost may list several destinations, tried in order; the agent
    splits the list itself, so the route keeps all of them."""
    r = Router(queue_settings(tmp_path, relayhost="[127.0.0.1]:2525, [127.0.0.1]:2526"))
    assert r.route("a@example.net") == Route("smtp", "[127.0.0.1]:2525, [127.0.0.1]:2526")


def test_default_transport_nexthop_beats_relayhost(tmp_path: Path) -> None:
    r = Router(queue_settings(tmp_path, default_transport="lmtp:unix:/tmp/l"))
    assert r.route("a@example.net") == Route("lmtp", "unix:/tmp/l")


def test_transport_maps_table(tmp_path: Path) -> None:
    table = {
        "special@example.net": "lmtp:unix:/s",
        "example.com": "smtp:[10.0.0.1]:26",
        ".sub.example.org": "smtp:",
        "bounce.example": "error:5.1.1 go away",
        "later.example": "retry:try later",
        "odd.example": "pipe:",
    }
    r = Router(queue_settings(tmp_path), lookup=table.get)
    assert r.route("special@example.net") == Route("lmtp", "unix:/s")
    assert r.route("x@example.com") == Route("smtp", "[10.0.0.1]:26")
    assert r.route("x@a.sub.example.org") == Route("smtp", "[127.0.0.1]:2525")
    assert r.route("x@bounce.example") == Route("error", "5.1.1 go away")
    assert r.route("x@later.example") == Route("retry", "try later")
    assert r.route("x@odd.example").transport == "unavailable"
    assert r.route("x@other.example") == Route("smtp", "[127.0.0.1]:2525")


def test_transport_maps_from_configuration(tmp_path: Path) -> None:
    cfg = queue_settings(tmp_path, transport_maps="inline:{example.com=lmtp:unix:/x}")
    assert Router(cfg).route("a@example.com") == Route("lmtp", "unix:/x")


def _sqlite_transport(tmp_path: Path, rows: list[tuple[str, str]]) -> str:
    db = tmp_path / "transport.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE m (k TEXT, v TEXT)")
    conn.executemany("INSERT INTO m VALUES (?, ?)", rows)
    conn.commit()
    conn.close()
    cf = tmp_path / "transport.cf"
    cf.write_text(sqldata.cf_text(dbpath=str(db), query="SELECT v FROM m WHERE k='%s'"))
    return f"sqlite:{cf}"


def test_a_table_that_cannot_answer_defers_the_recipient(tmp_path: Path) -> None:
    def down(key: str) -> str | None:
        raise TableLookupError("pgsql:/etc/t.cf: lookup error: no server available")

    r = Router(queue_settings(tmp_path), lookup=down)
    assert r.route("a@example.net") == Route("retry", "4.3.0 address resolver failure")
    assert RESOLVER_FAILURE == "4.3.0 address resolver failure"


async def test_network_transport_maps_are_asked_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailcarrier.tables.sqlite import SqliteTable

    spec = _sqlite_transport(tmp_path, [("example.com", "lmtp:unix:/x"), (".org", "retry:later")])
    r = Router(queue_settings(tmp_path, transport_maps=spec))
    assert r.network
    answers = await r.prefetch(["a@example.com", "b@sub.example.org", "c@example.net"])
    assert answers == {
        "a@example.com": "lmtp:unix:/x",
        "b@sub.example.org": "retry:later",
        "c@example.net": None,
    }

    def blocked(self: SqliteTable, key: str) -> str | None:
        raise AssertionError("a blocking lookup")

    monkeypatch.setattr(SqliteTable, "lookup", blocked)
    assert r.route("a@example.com", answers) == Route("lmtp", "unix:/x")
    assert r.route("b@sub.example.org", answers) == Route("retry", "later")
    assert r.route("c@example.net", answers) == Route("smtp", "[127.0.0.1]:2525")


async def test_a_network_table_that_is_down_defers(tmp_path: Path) -> None:
    from tests.tables.sqlfaults import dead_port

    cf = tmp_path / "dead.cf"
    cf.write_text(
        sqldata.cf_text(hosts=f"inet:127.0.0.1:{dead_port()}", dbname="m", query="SELECT '%s'")
    )
    r = Router(queue_settings(tmp_path, transport_maps=f"pgsql:{cf}"))
    answers = await r.prefetch(["a@example.com"])
    assert isinstance(answers["a@example.com"], TableLookupError)
    assert r.route("a@example.com", answers) == Route("retry", RESOLVER_FAILURE)
